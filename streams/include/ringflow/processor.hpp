// processor<T, R>: a subscriber<T> and a publisher<R> at once (Reactive
// Streams' Processor): it transforms what its upstream sends with f, and
// passes its single downstream subscriber's demand upstream.
//
//   ringflow::processor<int, std::string> to_text([](int v) { return std::to_string(v); });
//   numbers.subscribe(to_text);                         // upstream side (callbacks)
//   auto sub = to_text.as_publisher().subscribe();      // downstream side
//
// One downstream subscription at a time; a second one completes at once.
// The processor must outlive both sides. Upstream errors reach the
// downstream after the values before them.
#pragma once

#include <exception>
#include <functional>
#include <optional>
#include <utility>

#include <ringflow/channel.hpp>
#include <ringflow/publisher.hpp>

namespace ringflow {

template <class T, class R>
class processor : public subscriber<T> {
 public:
  explicit processor(std::function<R(T)> f, std::size_t prefetch_limit = 256)
      : f_(std::move(f)), values_(prefetch_limit) {}

  // ---- the subscriber side --------------------------------------------------
  void on_subscribe(subscription<T>& s) override {
    upstream_ = &s;
    subscribed_.try_send(1);
  }
  void on_next(T v) override {
    // Never full: upstream gets no more demand than there is room for.
    values_.try_send(f_(std::move(v)));
  }
  void on_error(std::exception_ptr e) override {
    error_ = e;
    finish();
  }
  void on_complete() override { finish(); }

  // ---- the publisher side ---------------------------------------------------
  publisher<R> as_publisher() {
    return publisher<R>::create([self = this](emitter<R>& out) -> task<void> {
      if (self->taken_) co_return;  // unicast
      self->taken_ = true;
      std::optional<int> ready = co_await self->subscribed_.recv();
      if (!ready) co_return;
      std::uint64_t requested = 0;  // asked upstream, not yet received
      for (;;) {
        bool wanted = co_await out.demanded();
        if (!wanted) {
          if (self->upstream_ && !self->done_) self->upstream_->cancel();
          co_return;
        }
        std::uint64_t room = self->values_.capacity() - self->values_.size();
        std::uint64_t want = std::min<std::uint64_t>(out.demand(), room);
        if (want > requested && !self->done_) {
          (void)self->upstream_->request(want - requested);
          requested = want;
        }
        std::optional<R> v = co_await self->values_.recv();
        if (!v) break;
        if (requested) --requested;
        bool ok = co_await out.emit(std::move(*v));
        if (!ok) co_return;
      }
      if (self->error_) std::rethrow_exception(self->error_);
    });
  }

 private:
  void finish() {
    done_ = true;
    upstream_ = nullptr;  // valid only until the terminal signal
    values_.close();
    subscribed_.close();
  }

  std::function<R(T)> f_;
  channel<R> values_;
  channel<int> subscribed_{1};
  subscription<T>* upstream_ = nullptr;
  std::exception_ptr error_;
  bool done_ = false;
  bool taken_ = false;
};

}  // namespace ringflow
