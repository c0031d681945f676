#include "lab.hpp"

#include <memory>

#include <ringflow/runtime.hpp>

#include "consumer_cost.hpp"
#include "rss.hpp"
#include "strategy.hpp"

namespace ringflow::lab {

namespace {

task<void> run_all(run_env env, results* out) {
  const options& o = *env.opts;
  for (scenario_kind sc : o.scenarios) {
    for (strategy_kind st : o.strategies) {
      if (o.stop.stop_requested()) co_return;
      release_free_memory();  // the previous run's payloads, so RSS growth starts clean
      auto state = std::make_unique<run_state>(env, sc, st);
      run_result r = co_await run_strategy(state.get());
      out->runs.push_back(std::move(r));
      if (o.on_run_finished) o.on_run_finished(out->runs.back());
      ++env.run_index;
    }
  }
}

}  // namespace

results run(const options& o) {
  o.validate();
  results out;
  out.opts = o;
  out.opts.on_progress = nullptr;
  const std::int64_t t0 = now_ns();
  out.producer_tick_s = std::chrono::duration<double>(o.producer_tick()).count();
  out.item_cost_s = std::chrono::duration<double>(o.item_cost()).count();

  ringflow::runtime rt({.threads = o.threads});
  rss_reader rss;
  histogram latency, behind;
  run_env env;
  env.opts = &o;
  env.rt = &rt;
  env.rss = &rss;
  env.latency = &latency;
  env.behind = &behind;
  env.consumer_worker = o.threads > 1 ? 1 : 0;
  env.run_count = o.scenarios.size() * o.strategies.size();
  out.runs.reserve(env.run_count);
  rt.block_on(run_all(env, &out));
  out.wall_s = static_cast<double>(now_ns() - t0) / 1e9;
  return out;
}

}  // namespace ringflow::lab
