#include "respcache/util/hot_keys.hpp"

#include <catch2/catch.hpp>

#include <string>

using respcache::hot_keys;

TEST_CASE("hot keys: the most read keys stand out of many read once, in bounded memory", "[util][hot]") {
    hot_keys a, b;
    for (int i = 0; i < 20000; ++i) {
        a.read(0, "k:" + std::to_string(i));  // 20000 keys read once each
        if (i % 4 == 0) a.read(0, "hot");      // 5000 reads
        if (i % 10 == 0) b.read(0, "warm");    // 2000 reads, on another thread's summary
        if (i % 10 == 0) b.read(1, "hot");     // the same name in another database is another key
    }
    CHECK(a.snapshot().size() <= hot_keys::kCapacity);
    const auto top = hot_keys::top({&a, &b}, 3);
    REQUIRE(top.size() == 3);
    CHECK(top[0].name == "hot");
    CHECK(top[0].db == 0);
    // Space-Saving overestimates by at most what the least counted slot held when the key came in.
    // Sampled: within a fifth of the truth (the sampling is seeded, so this is the same every run).
    CHECK(top[0].reads >= 4000);
    CHECK(top[0].reads <= 6000 + 20000 / hot_keys::kCapacity);
    CHECK(((top[1].name == "warm" && top[2].name == "hot" && top[2].db == 1) ||
           (top[2].name == "warm" && top[1].name == "hot" && top[1].db == 1)));
}

TEST_CASE("hot keys: names longer than the bound are not kept", "[util][hot]") {
    hot_keys h;
    const std::string huge(hot_keys::kLongestName + 1, 'x');
    for (unsigned i = 0; i < 10 * hot_keys::kEvery; ++i) h.read(0, huge);
    CHECK(h.snapshot().empty());
}
