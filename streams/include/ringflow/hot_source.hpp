// hot_source<T>: values that arrive whether or not anyone asked for them (a
// sensor callback, a market feed, a timer), exposed as a publisher.
//
//   ringflow::hot_source<quote> feed;
//   auto sub = (feed.as_publisher() | ringflow::on_backpressure_latest()).subscribe();
//   feed.push(q);     // never blocks, from a task of the subscriber's worker
//
// push() cannot wait for demand, so a subscription without demand overflows:
// it fails with std::overflow_error ("no demand"), as Reactor's hot sources
// do. Put an on_backpressure_* operator in front to decide what to lose.
#pragma once

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <vector>

#include <ringflow/channel.hpp>
#include <ringflow/publisher.hpp>

namespace ringflow {

template <class T>
class hot_source {
 public:
  hot_source() : s_(std::make_shared<shared>()) {}
  hot_source(const hot_source&) = delete;
  ~hot_source() { close(); }

  // Offers v to every current subscription (copies for all but the last).
  // Must be called on the subscribers' worker.
  void push(T v) {
    auto& ems = s_->emitters;
    for (std::size_t i = 0; i < ems.size(); ++i) {
      entry& e = ems[i];
      if (e.failed) continue;
      T copy = i + 1 == ems.size() ? std::move(v) : T(v);
      if (!e.out->try_emit(copy)) {
        if (e.out->cancelled()) continue;
        e.failed = true;  // no demand: this subscription overflows
        e.stop->try_send(1);
      }
    }
  }
  // Completes every subscription.
  void close() {
    if (!s_) return;
    for (auto& e : s_->emitters) e.stop->try_send(0);
    s_->closed = true;
  }

  publisher<T> as_publisher() const {
    return publisher<T>::create([s = s_](emitter<T>& out) -> task<void> {
      if (s->closed) co_return;
      channel<int> stop(1);
      registration reg(s, {&out, &stop, false});  // leaves the list however the frame ends
      auto why = co_await stop.recv();           // woken by close() (0) or an overflow (1)
      if (why && *why == 1) throw std::overflow_error("ringflow::hot_source: value arrived without demand");
    });
  }

 private:
  struct entry {
    emitter<T>* out;
    channel<int>* stop;
    bool failed;
  };
  struct shared {
    std::vector<entry> emitters;
    bool closed = false;
  };
  struct registration {
    std::shared_ptr<shared> s;
    emitter<T>* out;
    registration(std::shared_ptr<shared> sh, entry e) : s(std::move(sh)), out(e.out) { s->emitters.push_back(e); }
    registration(const registration&) = delete;
    ~registration() {
      std::erase_if(s->emitters, [&](const entry& e) { return e.out == out; });
    }
  };
  std::shared_ptr<shared> s_;
};

}  // namespace ringflow
