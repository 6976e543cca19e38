#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace respcache::proxy {

class slot_home;

// One reply's place in a client's ordered reply queue. A local reply is done as soon as it is written;
// a request sent to Redis (a pending, see pending.hpp) is done when its reply is in. Slots are reused:
// each goes back to the pool it came from (its home) once the queue has passed its bytes on.
class slot {
public:
    explicit slot(slot_home& home) noexcept : home_(&home) {}
    virtual ~slot() = default;
    slot(const slot&) = delete;
    slot& operator=(const slot&) = delete;

    std::string data;         // the reply the client gets
    bool done = false;
    bool suppressed = false;  // CLIENT REPLY OFF/SKIP: the reply is dropped
    bool held = false;        // done, but held back behind a slot still waiting (counted by the queue)

    slot_home& home() const noexcept { return *home_; }

protected:
    // Back to a fresh state for reuse; kinds clear their own members too.
    virtual void clear() {
        data.clear();
        done = false;
        suppressed = false;
        held = false;
    }
    friend class slot_home;

private:
    slot_home* home_;
};

// Where slots of one kind are kept for reuse (a bounded number, with bounded buffers).
//
// As many as a deep pipeline needed are kept (up to kKept), not only a few: a slot freed after every
// request of a pipeline of a thousand misses, and made anew for the next, leaves a hole in the heap
// between the cache entries filled meanwhile, and the entries (one allocation each, of their own size)
// rarely fit those holes. Filling 1,000,000 GET entries by pipelines of 2,000 cost 201 B of RSS per entry
// with 128 slots kept, and 189.4 B with 4,096 (bench/run.py's memory row: 168 B of it is the entry). Only
// kKeptWithBuffer of them keep their reply buffer: a slot without one costs its object alone (320 B for
// the largest kind, a fill), so a client's pool of a kind is bounded by about 1.3 MB plus
// kKeptWithBuffer * kKeptBytes.
class slot_home {
public:
    virtual ~slot_home() = default;
    // Takes a slot back after its reply has left the queue.
    void give_back(std::unique_ptr<slot> s);

    static constexpr std::size_t kKept = 4096;            // free slots kept per kind
    static constexpr std::size_t kKeptWithBuffer = 128;   // of them, how many may keep their reply buffer
    static constexpr std::size_t kKeptBytes = 16 * 1024;  // the largest buffer a kept slot holds on to

protected:
    std::unique_ptr<slot> take_free();

private:
    std::vector<std::unique_ptr<slot>> free_;
};

// The home of one kind T, making a new T(home, owner) when none is free.
template <typename T>
class slot_pool final : public slot_home {
public:
    template <typename Owner>
    explicit slot_pool(Owner& owner) : make_([&owner](slot_home& h) { return std::make_unique<T>(h, owner); }) {}
    std::unique_ptr<T> take() {
        if (auto s = take_free()) return std::unique_ptr<T>(static_cast<T*>(s.release()));
        return make_(*this);
    }

private:
    std::function<std::unique_ptr<T>(slot_home&)> make_;
};

}  // namespace respcache::proxy
