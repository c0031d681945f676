// Test helpers: a strict JSON parser (RFC 8259 grammar) and an XML
// well-formedness checker, small enough to trust by reading.
#pragma once

#include <cctype>
#include <cstdlib>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lab_test {

struct json {
  enum class kind { null, boolean, number, string, array, object };
  kind k = kind::null;
  bool b = false;
  double n = 0;
  std::string s;
  std::vector<json> a;
  // An object's members, keys[i] -> values[i] (a vector of pairs would need
  // json complete here).
  std::vector<std::string> keys;
  std::vector<json> values;

  const json* find(std::string_view key) const {
    for (std::size_t i = 0; i < keys.size(); ++i)
      if (keys[i] == key) return &values[i];
    return nullptr;
  }
  const json& at(std::string_view key) const {
    const json* v = find(key);
    if (!v) throw std::runtime_error("json: no key " + std::string(key));
    return *v;
  }
};

class json_parser {
 public:
  explicit json_parser(std::string_view t) : t_(t) {}
  json parse_document() {
    json v = value();
    ws();
    if (i_ != t_.size()) fail("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("json: " + what + " at offset " + std::to_string(i_));
  }
  void ws() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\n' || t_[i_] == '\r' || t_[i_] == '\t')) ++i_;
  }
  char peek() const { return i_ < t_.size() ? t_[i_] : '\0'; }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  void literal(std::string_view w) {
    if (t_.substr(i_, w.size()) != w) fail("bad literal");
    i_ += w.size();
  }
  json value() {
    ws();
    json v;
    switch (peek()) {
      case '{': v.k = json::kind::object; object(v); break;
      case '[': v.k = json::kind::array; array(v); break;
      case '"': v.k = json::kind::string; v.s = string(); break;
      case 't': literal("true"); v.k = json::kind::boolean; v.b = true; break;
      case 'f': literal("false"); v.k = json::kind::boolean; break;
      case 'n': literal("null"); break;
      default: v.k = json::kind::number; v.n = number();
    }
    return v;
  }
  void object(json& v) {
    expect('{');
    ws();
    if (peek() == '}') {
      ++i_;
      return;
    }
    std::set<std::string> seen;
    for (;;) {
      ws();
      std::string key = string();
      if (!seen.insert(key).second) fail("duplicate key " + key);
      ws();
      expect(':');
      v.keys.push_back(std::move(key));
      v.values.push_back(value());
      ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      expect('}');
      return;
    }
  }
  void array(json& v) {
    expect('[');
    ws();
    if (peek() == ']') {
      ++i_;
      return;
    }
    for (;;) {
      v.a.push_back(value());
      ws();
      if (peek() == ',') {
        ++i_;
        continue;
      }
      expect(']');
      return;
    }
  }
  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (i_ >= t_.size()) fail("unterminated string");
      char c = t_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      char e = peek();
      ++i_;
      switch (e) {
        case '"': case '\\': case '/': out += e; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u':
          for (int k = 0; k < 4; ++k) {
            if (!std::isxdigit(static_cast<unsigned char>(peek()))) fail("bad \\u escape");
            ++i_;
          }
          out += '?';  // the tests never need the code point
          break;
        default: fail("bad escape");
      }
    }
  }
  double number() {
    const std::size_t start = i_;
    if (peek() == '-') ++i_;
    if (peek() == '0') {
      ++i_;
    } else if (std::isdigit(static_cast<unsigned char>(peek()))) {
      while (std::isdigit(static_cast<unsigned char>(peek()))) ++i_;
    } else {
      fail("bad value");
    }
    if (peek() == '.') {
      ++i_;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("bad fraction");
      while (std::isdigit(static_cast<unsigned char>(peek()))) ++i_;
    }
    if (peek() == 'e' || peek() == 'E') {
      ++i_;
      if (peek() == '+' || peek() == '-') ++i_;
      if (!std::isdigit(static_cast<unsigned char>(peek()))) fail("bad exponent");
      while (std::isdigit(static_cast<unsigned char>(peek()))) ++i_;
    }
    return std::strtod(std::string(t_.substr(start, i_ - start)).c_str(), nullptr);
  }

  std::string_view t_;
  std::size_t i_ = 0;
};

inline json parse_json(std::string_view text) { return json_parser(text).parse_document(); }

// "" when doc is well-formed XML (one root element, matched tags, quoted and
// unique attributes, valid entity references, no stray '<' or '&'), else why not.
inline std::string xml_problem(std::string_view d) {
  std::size_t i = 0;
  std::vector<std::string> open;
  int roots = 0;
  auto name_start = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':'; };
  auto name_char = [&](char c) { return name_start(c) || std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.'; };
  auto read_name = [&]() {
    std::size_t s = i;
    if (i >= d.size() || !name_start(d[i])) return std::string();
    while (i < d.size() && name_char(d[i])) ++i;
    return std::string(d.substr(s, i - s));
  };
  auto entity_ok = [&](std::size_t at) {  // d[at] == '&'
    std::size_t semi = d.find(';', at);
    if (semi == std::string_view::npos || semi - at > 10) return false;
    std::string_view e = d.substr(at + 1, semi - at - 1);
    if (e == "amp" || e == "lt" || e == "gt" || e == "quot" || e == "apos") return true;
    if (e.size() >= 2 && e[0] == '#') {
      std::size_t k = 1;
      bool hex = e[1] == 'x';
      if (hex) ++k;
      if (k >= e.size()) return false;
      for (; k < e.size(); ++k)
        if (!(hex ? std::isxdigit(static_cast<unsigned char>(e[k])) : std::isdigit(static_cast<unsigned char>(e[k]))))
          return false;
      return true;
    }
    return false;
  };
  auto skip_ws = [&]() {
    while (i < d.size() && std::isspace(static_cast<unsigned char>(d[i]))) ++i;
  };
  while (i < d.size()) {
    if (d[i] != '<') {
      if (d[i] == '&' && !entity_ok(i)) return "bad entity at " + std::to_string(i);
      if (open.empty() && !std::isspace(static_cast<unsigned char>(d[i]))) return "text outside the root at " + std::to_string(i);
      ++i;
      continue;
    }
    if (d.substr(i, 4) == "<!--") {
      std::size_t e = d.find("-->", i + 4);
      if (e == std::string_view::npos) return "unterminated comment";
      i = e + 3;
      continue;
    }
    if (d.substr(i, 2) == "<?") {
      if (roots || !open.empty()) return "processing instruction after the root started";
      std::size_t e = d.find("?>", i + 2);
      if (e == std::string_view::npos) return "unterminated <?";
      i = e + 2;
      continue;
    }
    if (d.substr(i, 2) == "</") {
      i += 2;
      std::string name = read_name();
      skip_ws();
      if (i >= d.size() || d[i] != '>') return "bad end tag " + name;
      ++i;
      if (open.empty() || open.back() != name) return "mismatched end tag </" + name + ">";
      open.pop_back();
      continue;
    }
    ++i;
    std::string name = read_name();
    if (name.empty()) return "bad tag name at " + std::to_string(i);
    if (open.empty() && ++roots > 1) return "more than one root element";
    std::set<std::string> attrs;
    for (;;) {
      const std::size_t before = i;
      skip_ws();
      if (i >= d.size()) return "unterminated tag " + name;
      if (d[i] == '>') {
        ++i;
        open.push_back(name);
        break;
      }
      if (d.substr(i, 2) == "/>") {
        i += 2;
        break;
      }
      if (i == before) return "attributes must be separated by space in " + name;
      std::string attr = read_name();
      if (attr.empty()) return "bad attribute in " + name;
      if (!attrs.insert(attr).second) return "duplicate attribute " + attr + " in " + name;
      skip_ws();
      if (i >= d.size() || d[i] != '=') return "attribute without value: " + attr;
      ++i;
      skip_ws();
      if (i >= d.size() || (d[i] != '"' && d[i] != '\'')) return "unquoted attribute " + attr;
      const char q = d[i++];
      std::size_t e = d.find(q, i);
      if (e == std::string_view::npos) return "unterminated attribute " + attr;
      for (std::size_t k = i; k < e; ++k) {
        if (d[k] == '<') return "'<' in attribute " + attr;
        if (d[k] == '&' && !entity_ok(k)) return "bad entity in attribute " + attr;
      }
      i = e + 1;
    }
  }
  if (!open.empty()) return "unclosed element <" + open.back() + ">";
  if (roots != 1) return "no root element";
  return {};
}

}  // namespace lab_test
