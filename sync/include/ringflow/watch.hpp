// watch<T>: the latest value, read by many (Tokio's watch). Each set()
// makes a new version; a receiver waits for a version newer than the one it
// last saw and gets the newest value then, skipping the ones in between.
//
//   ringflow::watch<config> cfg(load());
//   auto r = cfg.subscribe();                  // has seen the current version
//   cfg.set(reload());                         // never suspends
//   while (auto c = co_await r.changed()) apply(*c);   // nullopt once closed
//
// - set(v): stores v as the newest version and wakes every receiver waiting
//   in changed(). Never suspends. After close() it does nothing.
// - get(): a copy of the newest value.
// - subscribe(): a receiver that has seen the current version, so its first
//   changed() waits for the next set().
// - receiver::changed(): co_await -> std::optional<T>: as soon as a version
//   newer than the one this receiver last saw is set, the newest value (and
//   that version is now seen). It never misses the newest value and never
//   returns one version twice to one receiver; versions set while it was not
//   looking are skipped, not queued. After close(): a version set before
//   close and not yet seen is still returned; then nullopt.
// - receiver::has_changed(): a newer version is there (changed() would not wait).
// - close(): idempotent; wakes every waiting changed(). ~watch() closes;
//   receivers may outlive the watch (the state is shared).
//
// Cancel safety: a changed() cancelled while waiting (its frame destroyed,
// e.g. by timeout) marks nothing seen: the receiver's next changed()
// returns what the cancelled one would have.
//
// Thread safety: usable from tasks on any workers; one lock, held while T is
// copied out or moved in (the replaced value is destroyed after it), so T's
// copy should be cheap (a std::shared_ptr<const X> for large X). A receiver
// may be copied (the copy has seen what the original saw) and must outlive
// the tasks suspended in its changed(). A moved-from receiver throws
// std::logic_error.
#pragma once

#include <cstdint>
#include <optional>
#include <type_traits>

#include <ringflow/task.hpp>

namespace ringflow {

namespace detail {
template <class T>
struct watch_state;
template <class T>
class watch_changed_awaiter;
}  // namespace detail

template <class T>
class watch {
  static_assert(std::is_copy_constructible_v<T>, "ringflow::watch<T>: T must be copy constructible");

 public:
  using value_type = T;
  using changed_awaiter = detail::watch_changed_awaiter<T>;
  class receiver;

  explicit watch(T initial);
  watch(const watch&) = delete;
  watch& operator=(const watch&) = delete;
  // Closes.
  ~watch();

  // A new version: wakes every waiting receiver. Ignored once closed.
  void set(T value);
  // The newest value.
  T get() const;
  // Versions set so far (0 before the first set()).
  std::uint64_t version() const;
  // A receiver that has seen the current version.
  receiver subscribe();
  // Idempotent: changed() returns nullopt once what was set before is seen.
  void close();
  bool is_closed() const;

 private:
  detail::watch_state<T>* s_;
};

template <class T>
class watch<T>::receiver {
 public:
  receiver(const receiver& o) noexcept;
  receiver(receiver&& o) noexcept;
  receiver& operator=(const receiver& o) noexcept;
  receiver& operator=(receiver&& o) noexcept;
  ~receiver();

  // co_await -> std::optional<T>: the newest value once it is newer than the
  // last one seen; nullopt once closed and seen.
  changed_awaiter changed();
  // True when changed() would return a value without waiting.
  bool has_changed() const;
  // The newest value; marks nothing seen.
  T get() const;

 private:
  friend class watch;
  friend class detail::watch_changed_awaiter<T>;
  receiver(detail::watch_state<T>* s, std::uint64_t seen) noexcept : s_(s), seen_(seen) {}
  detail::watch_state<T>& state() const;
  detail::watch_state<T>* s_;
  std::uint64_t seen_;  // the version last returned; read and written under the state's lock
};

}  // namespace ringflow

#include <ringflow/detail/watch_state.hpp>
