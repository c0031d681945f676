#include "run_state.hpp"

#include <algorithm>

#include <ringflow/sleep.hpp>

namespace ringflow::lab {

run_state::run_state(const run_env& e, scenario_kind k, strategy_kind st)
    : env(e), sc(k, e.opts->rate, e.opts->shape), strategy(st) {
  // Allocated and written now, so that recording never grows the RSS being measured.
  const auto every = e.opts->sample_every;
  const std::size_t n = static_cast<std::size_t>(e.opts->duration / every) + 64;
  windows.assign(n, latency_window{});
  samples.reserve(n);
  env.latency->reset();
  env.behind->reset();
}

void run_state::begin() {
  start_ns = now_ns();
  deadline_ns = start_ns + env.opts->duration.count();
  rss_start_kib = rss_peak_kib = env.rss->resident_kib();
}

void run_state::record_receipt(const item& v) {
  const std::int64_t now = now_ns();
  const auto latency = static_cast<std::uint64_t>(std::max<std::int64_t>(now - v.offered_ns, 0));
  const std::uint64_t latest = latest_seq.load(std::memory_order_relaxed);
  env.latency->record(latency);
  env.behind->record(latest > v.seq ? latest - v.seq : 0);
  const auto slot = static_cast<std::size_t>(std::max<std::int64_t>(now - start_ns, 0) / env.opts->sample_every.count());
  latency_window& w = windows[std::min(slot, windows.size() - 1)];
  ++w.count;
  w.sum_ns += latency;
  w.max_ns = std::max(w.max_ns, latency);
  ++delivered;
  delivered_pub.store(delivered, std::memory_order_release);
  if (env.opts->on_sample) {
    // A fetch-max: the sampler resets it to 0 concurrently.
    const std::uint64_t lat = std::max<std::uint64_t>(latency, 1);  // 0 means "none"
    std::uint64_t seen = live_latency_max_ns.load(std::memory_order_relaxed);
    while (lat > seen && !live_latency_max_ns.compare_exchange_weak(seen, lat, std::memory_order_relaxed)) {
    }
  }
}

void run_state::record_suspension(std::int64_t t0_ns) {
  suspended_ns += now_ns() - t0_ns;
  ++suspensions;
}

run_result run_state::finish(std::size_t buffer_bound) const {
  run_result r;
  r.scenario = sc.kind();
  r.strategy = strategy;
  r.buffer_bound = buffer_bound;
  r.duration_s = std::chrono::duration<double>(env.opts->duration).count();
  r.target_rate = sc.mean_rate(env.opts->duration);
  r.scheduled = sc.offered_by(env.opts->duration);
  r.offered = offered;
  r.delivered = delivered;
  r.rejected = rejected;
  r.on_drop_calls = on_drop;
  r.suspended_s = static_cast<double>(suspended_ns) / 1e9;
  r.suspensions = suspensions;
  r.latency_us = summarize(*env.latency, 1e-3);
  r.behind = summarize(*env.behind);
  r.high_water = observed_high_water;
  r.peak_rss_kib = std::max<std::int64_t>(rss_peak_kib - rss_start_kib, 0);
  r.timeline = samples;
  // Trailing windows past the last sample hold nothing worth plotting.
  r.latency_timeline.assign(windows.begin(), windows.begin() + static_cast<std::ptrdiff_t>(std::min(windows.size(), samples.size() + 1)));
  r.sample_every_s = std::chrono::duration<double>(env.opts->sample_every).count();
  return r;
}

std::optional<std::int64_t> run_state::pause_until(std::int64_t now) const {
  auto end = sc.stall_end(elapsed(now));
  if (!end) return std::nullopt;
  return std::min(start_ns + end->count(), deadline_ns);
}

task<void> sample_loop(run_state* s, std::function<std::size_t()> depth) {
  const std::int64_t every = s->env.opts->sample_every.count();
  const std::int64_t progress_every = std::max<std::int64_t>(100'000'000 / every, 1);
  std::int64_t next = s->start_ns + every;
  for (std::int64_t k = 1; !s->stop_sampler; ++k) {
    std::int64_t now = now_ns();
    if (next > now) {
      co_await sleep_for(std::chrono::nanoseconds(next - now));
      now = now_ns();
    }
    next = std::max(next + every, now + every / 2);  // a late wake-up skips, never bunches
    const std::int64_t rss = s->env.rss->resident_kib();
    s->rss_peak_kib = std::max(s->rss_peak_kib, rss);
    const std::size_t d = depth();
    if (!s->stop_sampler) {
      s->samples.push_back({static_cast<double>(now - s->start_ns) / 1e9, d, std::max<std::int64_t>(rss - s->rss_start_kib, 0)});
      if (s->env.opts->on_sample) {
        // The producer's tallies are read here: it runs on this worker too.
        live_sample ls;
        ls.run_index = s->env.run_index;
        ls.t_s = s->samples.back().t_s;
        ls.depth = d;
        ls.rss_kib = s->samples.back().rss_kib;
        const std::uint64_t worst = s->live_latency_max_ns.exchange(0, std::memory_order_relaxed);
        ls.latency_max_us = worst > 0 ? static_cast<double>(worst) / 1e3 : -1;
        ls.offered = s->offered;
        ls.delivered = s->delivered_pub.load(std::memory_order_relaxed);
        ls.dropped = s->rejected + s->on_drop;
        ls.suspended_s = static_cast<double>(s->suspended_ns) / 1e9;
        s->env.opts->on_sample(ls);
      }
    }
    if (k % progress_every == 0 && s->env.opts->on_progress) {
      progress p;
      p.run_index = s->env.run_index;
      p.run_count = s->env.run_count;
      p.scenario = s->sc.kind();
      p.strategy = s->strategy;
      p.elapsed_s = std::min(static_cast<double>(now - s->start_ns), static_cast<double>(s->deadline_ns - s->start_ns)) / 1e9;
      p.duration_s = static_cast<double>(s->deadline_ns - s->start_ns) / 1e9;
      p.offered = s->offered;
      p.delivered = s->delivered_pub.load(std::memory_order_relaxed);
      p.depth = d;
      s->env.opts->on_progress(p);
    }
  }
}

}  // namespace ringflow::lab
