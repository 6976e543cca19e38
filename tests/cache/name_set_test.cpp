// name_set: the flat set of names behind lru_cache::remember_tracked, against std::set as the model.

#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <set>
#include <string>

#include "../../src/cache/name_set.hpp"
#include "respcache/cache/lru_cache.hpp"

namespace {

using respcache::cache::hash_name;
using respcache::cache::name_set;

std::uint32_t h32(const std::string& s) { return static_cast<std::uint32_t>(hash_name(s)); }

}  // namespace

TEST_CASE("name_set: short, long and empty names; insert, contains, erase", "[cache][name_set]") {
    name_set s;
    const std::string shortn = "key:1";
    const std::string edge(name_set::kInline, 'x');  // the longest name kept in its slot
    const std::string longn(name_set::kInline + 1, 'y');
    const std::string empty;
    CHECK(s.bytes() == 0);
    for (const std::string* n : {&shortn, &edge, &longn, &empty}) {
        CHECK_FALSE(s.contains(*n, h32(*n)));
        CHECK(s.insert(*n, h32(*n)));
        CHECK_FALSE(s.insert(*n, h32(*n)));
        CHECK(s.contains(*n, h32(*n)));
    }
    CHECK(s.size() == 4);
    // 16 slots of 32 bytes, and one block (rounded up to 16 bytes) for the name too long for its slot.
    CHECK(s.bytes() == 16 * 32 + 32);
    CHECK_FALSE(s.contains(shortn, h32(shortn) ^ 1));  // the hash is part of what is compared
    CHECK_FALSE(s.contains("key:2", h32(shortn)));     // and so is the name
    CHECK(s.erase(longn, h32(longn)));
    CHECK_FALSE(s.erase(longn, h32(longn)));
    CHECK(s.bytes() == 16 * 32);
    CHECK(s.contains(edge, h32(edge)));
    s.clear();
    CHECK(s.size() == 0);
    CHECK(s.bytes() == 0);
    CHECK_FALSE(s.contains(shortn, h32(shortn)));
}

TEST_CASE("name_set: bytes_with foresees the table's growth", "[cache][name_set]") {
    name_set s;
    CHECK(s.bytes_with(3) == 16 * 32);
    for (int i = 0; i < 8; ++i) {
        const std::string n = std::to_string(i);
        REQUIRE(s.insert(n, h32(n)));
    }
    CHECK(s.bytes() == 16 * 32);
    CHECK(s.bytes_with(3) == 32 * 32);  // a ninth name doubles the table
    CHECK(s.bytes_with(40) == 32 * 32 + 48);
    REQUIRE(s.insert("8", h32("8")));
    CHECK(s.bytes() == 32 * 32);
}

TEST_CASE("name_set: random inserts and erases, colliding hashes included, agree with std::set", "[cache][name_set]") {
    std::mt19937 rng(12345);
    name_set s;
    std::set<std::string> model;
    // Few distinct hashes, so that probe runs are long and the backward shift of erase is exercised.
    const auto hash_of = [](const std::string& n) { return static_cast<std::uint32_t>(hash_name(n) % 7); };
    const auto name_of = [](unsigned i) {
        std::string n = "k";
        n.append(std::to_string(i));
        if (i % 3 == 0) n.append(40, 'z');  // some names live in blocks of their own
        return n;
    };
    for (int round = 0; round < 20000; ++round) {
        const std::string n = name_of(rng() % 300);
        switch (rng() % 4) {
            case 0:
            case 1: CHECK(s.insert(n, hash_of(n)) == model.insert(n).second); break;
            case 2: CHECK(s.erase(n, hash_of(n)) == (model.erase(n) == 1)); break;
            default:
                if (!model.empty() && rng() % 8 == 0) {
                    s.erase_one();
                    // Which one went is the set's choice: find it by asking for each.
                    for (auto it = model.begin(); it != model.end(); ++it) {
                        if (!s.contains(*it, hash_of(*it))) {
                            model.erase(it);
                            break;
                        }
                    }
                }
        }
        REQUIRE(s.size() == model.size());
    }
    for (unsigned i = 0; i < 300; ++i) {
        const std::string n = name_of(i);
        CHECK(s.contains(n, hash_of(n)) == (model.count(n) == 1));
    }
    // Emptied by erasures, the table shrinks back.
    for (const std::string& n : model) REQUIRE(s.erase(n, hash_of(n)));
    CHECK(s.size() == 0);
    CHECK(s.bytes() <= 32 * 32);
}
