// How connection::command() turns its arguments into one formatted command
// before it returns: each argument as text (numbers written into the
// argument's own buffer), then hiredis's redisFormatCommandArgv, whose bytes
// the command owns (redis/src/command.cpp).
#pragma once

#include <algorithm>
#include <charconv>
#include <concepts>
#include <cstddef>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace ringflow::redis::detail {

// char, bool and the other character types are refused: is 'x' a letter or
// 120, is true "1" or "true"? Say which with a string or an integer.
template <class T>
concept command_number =
    (std::integral<T> || std::floating_point<T>) && !std::same_as<T, bool> && !std::same_as<T, char> &&
    !std::same_as<T, wchar_t> && !std::same_as<T, char8_t> && !std::same_as<T, char16_t> && !std::same_as<T, char32_t>;

template <class T>
concept command_argument = std::same_as<T, std::string> || std::same_as<T, std::string_view> ||
                           std::same_as<T, const char*> || std::same_as<T, char*> ||
                           (std::is_array_v<T> && std::same_as<std::remove_cv_t<std::remove_extent_t<T>>, char>) ||
                           command_number<T>;

// One argument's text: a view of a string argument, or a number written
// into buf_ (so it neither moves nor copies).
class argument_text {
 public:
  template <command_argument T>
  explicit argument_text(const T& a) {
    if constexpr (std::is_array_v<T>) {
      view_ = std::string_view(a, static_cast<std::size_t>(std::find(a, a + std::extent_v<T>, '\0') - a));
    } else if constexpr (std::is_pointer_v<T>) {
      if (!a) throw std::invalid_argument("ringflow::redis: a null const char* argument");
      view_ = a;
    } else if constexpr (command_number<T>) {
      // Wide enough for any integer and for the shortest round-trip form of
      // any floating-point value.
      auto r = std::to_chars(buf_, buf_ + sizeof buf_, a);
      view_ = std::string_view(buf_, static_cast<std::size_t>(r.ptr - buf_));
    } else {
      view_ = std::string_view(a);
    }
  }
  argument_text(const argument_text&) = delete;
  argument_text& operator=(const argument_text&) = delete;

  std::string_view view() const noexcept { return view_; }

 private:
  std::string_view view_;
  char buf_[64];
};

// Formatted commands: bytes from redisFormatCommandArgv, owned, or bytes
// that `keep` holds alive (a prepared_command's, a command_batch's).
class command_bytes {
 public:
  command_bytes() noexcept = default;
  command_bytes(char* data, std::size_t size) noexcept : data_(data), size_(size) {}
  command_bytes(std::shared_ptr<const void> keep, std::string_view bytes) noexcept
      : data_(const_cast<char*>(bytes.data())), size_(bytes.size()), shared_(std::move(keep)) {}
  command_bytes(command_bytes&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)), shared_(std::move(o.shared_)) {}
  command_bytes& operator=(command_bytes&& o) noexcept {
    if (this != &o) {
      reset();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
      shared_ = std::move(o.shared_);
    }
    return *this;
  }
  command_bytes(const command_bytes&) = delete;
  command_bytes& operator=(const command_bytes&) = delete;
  ~command_bytes() { reset(); }

  std::string_view view() const noexcept { return {data_, size_}; }
  std::size_t size() const noexcept { return size_; }
  explicit operator bool() const noexcept { return data_ != nullptr; }
  void reset() noexcept;  // frees owned bytes (redisFreeCommand), or lets go of shared ones

 private:
  char* data_ = nullptr;
  std::size_t size_ = 0;
  std::shared_ptr<const void> shared_;  // set: data_ is not ours to free
};

// Formats argv as one RESP command. Throws std::invalid_argument for an
// empty argv, one hiredis cannot format (over INT_MAX bytes or arguments),
// or a command that changes how the server replies (SUBSCRIBE and its kin,
// MONITOR, CLIENT REPLY); std::bad_alloc when out of memory.
command_bytes format_command(std::span<const std::string_view> argv);
// The same for command(std::vector<std::string>)'s form.
command_bytes format_command(const std::vector<std::string>& args);

// The same for command("SET", key, 42)'s arguments (argument_text's kinds).
template <class... Args>
command_bytes format_arguments(const Args&... args) {
  const argument_text texts[] = {argument_text(args)...};
  std::string_view views[sizeof...(Args)];
  for (std::size_t i = 0; i < sizeof...(Args); ++i) views[i] = texts[i].view();
  return format_command(views);
}

}  // namespace ringflow::redis::detail
