// The hand-over of a single-worker object (detail/affinity.hpp) when the
// object dies right after it: no request for it may stay in the former
// owner's inbox.
#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <thread>

#include <ringflow/detail/affinity.hpp>
#include <ringflow/ringflow.hpp>

namespace {

struct shared_object {
  ringflow::detail::affinity owner;
};

void wait_for(const std::atomic<bool>& flag) {
  while (!flag.load(std::memory_order_acquire)) std::this_thread::yield();
}

}  // namespace

// The owner lets go on its own (select() makes an object shared) while
// another worker's request waits in its inbox; the requester sees the object
// shared and frees it. The owner's next revoke pass must not read it (under
// ASan and TSan the stale request was a use after free).
TEST_CASE("a request the owner never had to serve is taken back before the object can be freed") {
  ringflow::runtime rt({.threads = 2});
  auto* obj = new shared_object;
  std::atomic<bool> owned{false}, freed{false};

  auto owner = rt.spawn_on(0, [](shared_object* o, std::atomic<bool>* owned, std::atomic<bool>* freed) -> ringflow::task<void> {
    CHECK_FALSE(o->owner.needs_lock());  // worker 0 becomes the owner
    owned->store(true, std::memory_order_release);
    while (!ringflow::detail::tls_worker->revoke_requested()) std::this_thread::yield();
    o->owner.make_shared();  // lets go before its revoke pass reaches the request
    wait_for(*freed);
    co_return;  // the revoke pass runs after this task
  }(obj, &owned, &freed));

  auto requester = rt.spawn_on(1, [](shared_object* o, std::atomic<bool>* owned, std::atomic<bool>* freed) -> ringflow::task<void> {
    wait_for(*owned);
    CHECK(o->owner.needs_lock());  // asks worker 0, then finds the object shared
    delete o;
    freed->store(true, std::memory_order_release);
    co_return;
  }(obj, &owned, &freed));

  owner.wait();
  requester.wait();
  // One more round trip through worker 0's loop, past its revoke pass.
  rt.spawn_on(0, []() -> ringflow::task<void> { co_return; }()).wait();
  CHECK_FALSE(rt.spawn_on(0, []() -> ringflow::task<bool> {
                  co_return ringflow::detail::tls_worker->revoke_requested();
                }()).wait());
}
