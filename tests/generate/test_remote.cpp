// The dedicated placement's assignment: every position of a trainer's shard is made by exactly
// one of its generator ranks, which agree with the trainer on who makes what.
#include <doctest/doctest.h>

#include <vector>

#include "generate/remote.hpp"

TEST_CASE("feed plan: a trainer's positions are dealt to its generator ranks in sampler-sized chunks, each once") {
  for (int trainers : {1, 2, 3})
    for (int generators : {3, 4, 7})
      for (int64_t chunk : {1, 3, 8})
        for (uint64_t positions : {0, 1, 5, 24, 25, 101})
          for (int t = 0; t < trainers; ++t) {
            const synth::FeedPlan plan{trainers, generators, t, chunk};
            CAPTURE(trainers);
            CAPTURE(generators);
            CAPTURE(chunk);
            CAPTURE(positions);
            std::vector<int> owner(positions, -1);
            for (int m = 0; m < plan.feeders(); ++m) {
              const int world = plan.world_rank_of_feeder(m);
              CHECK(world >= trainers);
              CHECK((world - trainers) % trainers == t);  // generator j = world - T feeds trainer j mod T
              const synth::IndexSequence s = plan.positions_of(m, positions);
              for (uint64_t q = 0; q < s.size; ++q) {
                const uint64_t p = s.at(q);
                REQUIRE(p < positions);
                if (q > 0) CHECK(p > s.at(q - 1));
                CHECK(owner[p] == -1);
                owner[p] = m;
                CHECK(plan.feeder_of(p) == m);
              }
            }
            for (uint64_t p = 0; p < positions; ++p) CHECK(owner[p] >= 0);
          }
  // Every generator rank feeds exactly one trainer: the feeders of all trainers are the G ranks.
  int total = 0;
  for (int t = 0; t < 3; ++t) total += synth::FeedPlan{3, 7, t, 4}.feeders();
  CHECK(total == 7);
}
