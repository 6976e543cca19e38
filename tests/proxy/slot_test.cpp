#include "respcache/proxy/slot.hpp"

#include <catch2/catch.hpp>

#include <memory>
#include <set>
#include <string>
#include <vector>

namespace {

using respcache::proxy::slot;
using respcache::proxy::slot_home;
using respcache::proxy::slot_pool;

struct owner {
    int made = 0;
};

struct test_slot final : slot {
    test_slot(slot_home& home, owner& o) : slot(home) { ++o.made; }
};

}  // namespace

TEST_CASE("slot pool: a deep pipeline's slots are all reused, only the first ones with their buffers", "[slot]") {
    owner o;
    slot_pool<test_slot> pool(o);
    const std::size_t depth = 2000;  // deeper than kKeptWithBuffer, within kKept
    std::vector<std::unique_ptr<test_slot>> batch;
    for (std::size_t i = 0; i < depth; ++i) {
        batch.push_back(pool.take());
        batch.back()->data.assign(200, 'x');
    }
    CHECK(o.made == static_cast<int>(depth));
    std::set<const slot*> first;
    for (auto& s : batch) first.insert(s.get());
    for (auto& s : batch) pool.give_back(std::move(s));
    batch.clear();

    // The next batch of the same depth makes no slot: every one comes back from the pool.
    std::size_t with_buffer = 0;
    for (std::size_t i = 0; i < depth; ++i) {
        batch.push_back(pool.take());
        CHECK(first.count(batch.back().get()) == 1);
        CHECK(batch.back()->data.empty());
        if (batch.back()->data.capacity() >= 200) ++with_buffer;
    }
    CHECK(o.made == static_cast<int>(depth));
    CHECK(with_buffer == slot_home::kKeptWithBuffer);
    for (auto& s : batch) pool.give_back(std::move(s));
}

TEST_CASE("slot pool: at most kKept slots are kept, and no buffer above kKeptBytes", "[slot]") {
    owner o;
    slot_pool<test_slot> pool(o);
    std::vector<std::unique_ptr<test_slot>> batch;
    for (std::size_t i = 0; i < slot_home::kKept + 10; ++i) {
        batch.push_back(pool.take());
        if (i == 0) batch.back()->data.assign(slot_home::kKeptBytes + 1, 'x');
    }
    for (auto& s : batch) pool.give_back(std::move(s));
    batch.clear();
    for (std::size_t i = 0; i < slot_home::kKept + 10; ++i) {
        batch.push_back(pool.take());
        CHECK(batch.back()->data.capacity() <= slot_home::kKeptBytes);
    }
    CHECK(o.made == static_cast<int>(2 * (slot_home::kKept + 10) - slot_home::kKept));
    for (auto& s : batch) pool.give_back(std::move(s));
}
