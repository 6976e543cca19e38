#include "respcache/coherence/tracking_state.hpp"

namespace respcache::coherence {

void tracking_state::await_barrier(std::function<void(bool)> done) {
    {
        std::lock_guard guard(barrier_mu_);
        // Checked under the lock: barriers_failed() runs after `live` went false, so a waiter added here
        // is either answered or failed by it.
        if (live.load(std::memory_order_seq_cst) && send_barrier) {
            if (!barrier_in_flight_) {
                barrier_in_flight_ = true;
                riding_.push_back(std::move(done));
                send_barrier(++barrier_seq_);
            } else {
                next_.push_back(std::move(done));
            }
            return;
        }
    }
    done(false);
}

void tracking_state::barrier_answered(std::uint64_t seq) {
    std::vector<std::function<void(bool)>> passed;
    {
        std::lock_guard guard(barrier_mu_);
        if (!barrier_in_flight_ || seq != barrier_seq_) return;  // one sent before a loss: its waiters failed
        passed.swap(riding_);
        barrier_in_flight_ = false;
        barriers.fetch_add(1, std::memory_order_relaxed);
        if (!next_.empty()) {
            riding_.swap(next_);
            barrier_in_flight_ = true;
            send_barrier(++barrier_seq_);
        }
    }
    for (auto& f : passed) f(true);
}

void tracking_state::barriers_failed() {
    std::vector<std::function<void(bool)>> failed;
    {
        std::lock_guard guard(barrier_mu_);
        failed.swap(riding_);
        failed.insert(failed.end(), std::make_move_iterator(next_.begin()), std::make_move_iterator(next_.end()));
        next_.clear();
        barrier_in_flight_ = false;
    }
    for (auto& f : failed) f(false);
}

}  // namespace respcache::coherence
