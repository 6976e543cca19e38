#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace respcache {

// A contiguous byte buffer for socket reads: bytes are appended at the back and consumed from the front.
// Space is never zero-filled; consumed space is reclaimed by moving the unread bytes to the front only when
// the free tail is too small, and a buffer that grew large is returned to its initial size once empty.
// Owned and used by one thread.
class io_buffer {
public:
    explicit io_buffer(std::size_t initial = 16 * 1024) : initial_(initial == 0 ? 1 : initial) {}

    // The unread bytes. Valid until the next prepare(), consume() or shrink().
    std::string_view readable() const noexcept { return {data_.get() + begin_, end_ - begin_}; }
    std::size_t size() const noexcept { return end_ - begin_; }
    bool empty() const noexcept { return begin_ == end_; }
    std::size_t capacity() const noexcept { return capacity_; }

    // Space for at least `min_free` more bytes at the back (at most max(min_free, what is free)).
    char* prepare(std::size_t min_free, std::size_t& available) {
        if (capacity_ - end_ < min_free) make_room(min_free);
        available = capacity_ - end_;
        return data_.get() + end_;
    }
    // Marks `n` bytes written into the space prepare() returned.
    void commit(std::size_t n) noexcept { end_ += n; }
    void append(std::string_view bytes) {
        if (bytes.empty()) return;
        std::size_t avail = 0;
        std::memcpy(prepare(bytes.size(), avail), bytes.data(), bytes.size());
        commit(bytes.size());
    }
    // Drops `n` bytes from the front.
    void consume(std::size_t n) noexcept {
        begin_ += n;
        if (begin_ == end_) begin_ = end_ = 0;
    }
    // Frees memory beyond the initial size if the buffer is empty.
    void shrink() {
        if (empty() && capacity_ > initial_ * 4) {
            data_.reset();
            capacity_ = 0;
        }
    }

private:
    void make_room(std::size_t min_free) {
        const std::size_t unread = end_ - begin_;
        if (begin_ > 0 && capacity_ - unread >= min_free && unread <= capacity_ / 2) {
            std::memmove(data_.get(), data_.get() + begin_, unread);
        } else {
            std::size_t cap = capacity_ == 0 ? initial_ : capacity_;
            while (cap - unread < min_free) cap *= 2;
            std::unique_ptr<char[]> bigger(new char[cap]);
            if (unread > 0) std::memcpy(bigger.get(), data_.get() + begin_, unread);
            data_ = std::move(bigger);
            capacity_ = cap;
        }
        end_ = unread;
        begin_ = 0;
    }

    std::size_t initial_;
    std::unique_ptr<char[]> data_;
    std::size_t capacity_ = 0;
    std::size_t begin_ = 0;
    std::size_t end_ = 0;
};

}  // namespace respcache
