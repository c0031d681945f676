// work_queue: acknowledged deliveries with prefetch, and a worker that crashes.
//
//   work_queue [jobs]       (default 24)
//
// A producer sends jobs into a ringflow::work_queue (max_length 8: it
// suspends while 8 jobs wait). Three workers subscribe with prefetch 2: each
// takes a batch of up to 2 jobs, works on them, and acks each one when done.
// Carol crashes in the middle of her third batch: an exception unwinds her
// task with two deliveries in hand, unacked. Dropping an unacked delivery
// requeues it, so her jobs go back to the head of the queue, and Alice and
// Bob receive them, marked redelivered. At the end every job has been acked
// exactly once; the program exits 1 if not.
#include <fmt/core.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <ringflow/ringflow.hpp>
#include <ringflow/work_queue.hpp>

using namespace std::chrono_literals;
using ringflow::task;

namespace {

struct job {
  int id;
  std::chrono::milliseconds cost;
};

using queue = ringflow::work_queue<job>;

struct ledger {
  std::vector<int> acked;  // per job: times acked (each written by one worker at a time)
};

task<void> produce(queue* q, int n) {
  for (int i = 0; i < n; ++i) {
    job j{i, std::chrono::milliseconds(10 + (i * 7) % 30)};
    auto s = co_await q->send(j);
    if (s != ringflow::send_status::sent) throw std::runtime_error("the queue refused a job");
  }
  q->close();
}

task<void> worker(queue* q, std::string name, int crash_in_batch, ledger* book) {
  auto c = q->subscribe(2);
  for (int batch = 1;; ++batch) {
    std::vector<queue::delivery> in_hand;
    auto first = co_await c.recv();
    if (!first) break;  // closed, drained, nothing unacked anywhere
    in_hand.push_back(std::move(*first));
    if (auto second = c.try_recv()) in_hand.push_back(std::move(*second));

    std::string ids;
    for (auto& d : in_hand) ids += fmt::format(" {}{}", d->id, d.redelivered() ? " (redelivered)" : "");
    fmt::print("{:>5}: batch {} holds job{}{}\n", name, batch, in_hand.size() > 1 ? "s" : "", ids);

    if (batch == crash_in_batch) {
      co_await ringflow::sleep_for(5ms);  // half-way through the work...
      throw std::runtime_error(fmt::format("{} crashed holding {} unacked job(s)", name, in_hand.size()));
    }
    for (auto& d : in_hand) {
      co_await ringflow::sleep_for(d->cost);
      ++book->acked[static_cast<std::size_t>(d->id)];
      d.ack();
    }
  }
  fmt::print("{:>5}: done\n", name);
}

task<int> run(int n) {
  queue jobs(8);
  ledger book{std::vector<int>(static_cast<std::size_t>(n), 0)};
  auto producer = ringflow::spawn(produce(&jobs, n));
  std::vector<ringflow::join_handle<void>> workers;
  workers.push_back(ringflow::spawn(worker(&jobs, "alice", 0, &book)));
  workers.push_back(ringflow::spawn(worker(&jobs, "bob", 0, &book)));
  workers.push_back(ringflow::spawn(worker(&jobs, "carol", 3, &book)));
  co_await std::move(producer);
  for (auto& w : workers) {
    try {
      co_await std::move(w);
    } catch (const std::exception& e) {
      fmt::print("crash: {}; her consumer and deliveries are gone, the jobs went back to the queue\n", e.what());
    }
  }

  auto st = jobs.stats();
  int once = 0;
  for (int a : book.acked) once += a == 1;
  fmt::print("\n{} jobs: {} acked exactly once; {} redelivered after the crash; {} still ready, {} unacked\n", n,
             once, st.redelivered, st.ready, st.unacked);
  fmt::print("stats: sent {} delivered {} acked {} requeued {} blocked sends {}\n", st.sent, st.delivered, st.acked,
             st.requeued, st.blocked_sends);
  const bool ok = once == n && st.acked == static_cast<std::uint64_t>(n) && st.redelivered > 0;
  fmt::print("{}\n", ok ? "every job was processed" : "SOMETHING WAS LOST");
  co_return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  const int n = argc > 1 ? std::atoi(argv[1]) : 24;
  if (n < 8) {
    fmt::print(stderr, "usage: work_queue [jobs >= 8]\n");
    return 2;
  }
  ringflow::runtime rt({.threads = 2});
  return rt.block_on(run(n));
}
