#include "mqtt/mqtt_session.hpp"

namespace telegate::gateway::mqtt {

namespace {

constexpr std::chrono::seconds kSweepInterval{10};

// The next level of `topic` (up to '/' or the end); advances `topic` past it and its '/'.
std::string_view next_level(std::string_view& topic, bool& more) noexcept {
  const std::size_t slash = topic.find('/');
  if (slash == std::string_view::npos) {
    const std::string_view level = topic;
    topic = {};
    more = false;
    return level;
  }
  const std::string_view level = topic.substr(0, slash);
  topic.remove_prefix(slash + 1);
  more = true;
  return level;
}

}  // namespace

std::expected<TopicScheme, std::string> TopicScheme::compile(std::string_view text) {
  if (text.empty()) return std::unexpected("must not be empty");
  if (text.front() == '$') return std::unexpected("must not start with '$' (reserved for the server)");
  TopicScheme scheme;
  scheme.text_ = std::string(text);
  std::string_view rest = text;
  bool more = true;
  bool has_device = false;
  while (more) {
    const std::string_view level = next_level(rest, more);
    Level& compiled = scheme.levels_.emplace_back();
    if (level == "+") {
      compiled.kind = Kind::any_level;
    } else if (level == "#") {
      if (more) return std::unexpected("'#' must be the last level, in '" + std::string(text) + "'");
      compiled.kind = Kind::rest;
    } else if (level.size() >= 2 && level.front() == '{' && level.back() == '}') {
      const std::string_view name = level.substr(1, level.size() - 2);
      if (name == "device_id") {
        if (has_device) return std::unexpected("{device_id} appears twice in '" + std::string(text) + "'");
        compiled.kind = Kind::device_id;
        has_device = true;
      } else if (name == "tenant") {
        compiled.kind = Kind::tenant;
      } else if (!name.empty() && name.find_first_of("{}+#") == std::string_view::npos) {
        compiled.kind = Kind::any_level;
      } else {
        return std::unexpected("bad placeholder '" + std::string(level) + "' in '" + std::string(text) + "'");
      }
    } else {
      if (level.find_first_of("+#{}") != std::string_view::npos) {
        return std::unexpected("a level is a literal, {name}, + or #; got '" + std::string(level) + "' in '" +
                               std::string(text) + "'");
      }
      if (find_invalid_utf8(level)) return std::unexpected("not valid UTF-8: '" + std::string(text) + "'");
      compiled.literal = std::string(level);
    }
  }
  if (!has_device) {
    return std::unexpected("must contain {device_id}, so that a device can publish only as itself: '" +
                           std::string(text) + "'");
  }
  return scheme;
}

TopicScheme::Match TopicScheme::match(std::string_view topic, std::string_view tenant,
                                      std::string_view device_id) const noexcept {
  if (topic.empty() || topic.front() == '$') return Match::no_match;  // $SYS/… is never a device's
  Match result = Match::ok;
  bool more = true;
  for (const Level& level : levels_) {
    if (level.kind == Kind::rest) return result;
    if (!more) return Match::no_match;
    const std::string_view value = next_level(topic, more);
    switch (level.kind) {
      case Kind::literal:
        if (value != level.literal) return Match::no_match;
        break;
      case Kind::device_id:
        if (value != device_id && result == Match::ok) result = Match::other_device;
        break;
      case Kind::tenant:
        if (value != tenant && result == Match::ok) result = Match::other_tenant;
        break;
      case Kind::any_level:
      case Kind::rest:
        break;
    }
  }
  return more ? Match::no_match : result;
}

std::expected<std::string_view, ReasonCode> TopicAliases::resolve(std::string_view topic,
                                                                  std::optional<std::uint16_t> alias) {
  if (!alias) {
    if (topic.empty()) return std::unexpected(ReasonCode::protocol_error);
    return topic;
  }
  if (*alias == 0 || *alias > maximum_) return std::unexpected(ReasonCode::topic_alias_invalid);
  const std::size_t index = *alias - 1u;
  if (topic.empty()) {
    if (index >= topics_.size() || topics_[index].empty()) return std::unexpected(ReasonCode::topic_alias_invalid);
    return std::string_view(topics_[index]);
  }
  if (topics_.size() <= index) topics_.resize(index + 1);
  topics_[index].assign(topic);
  return std::string_view(topics_[index]);
}

ClientState::Arrival ClientState::on_publish(std::uint16_t id, QoS qos) {
  const std::lock_guard lock(mutex_);
  auto [it, inserted] = entries_.try_emplace(id, Entry{qos, Stage::in_pipeline});
  if (inserted) return Arrival::fresh;
  if (it->second.qos != qos) {
    // The client reused the id for another message with another QoS: the old exchange is over
    // as far as the client is concerned (it cannot resend a message with a different QoS).
    if (it->second.stage == Stage::committed) {
      it->second = Entry{qos, Stage::in_pipeline};
      return Arrival::fresh;
    }
  }
  return it->second.stage == Stage::committed ? Arrival::committed : Arrival::in_pipeline;
}

void ClientState::on_ingested(std::uint16_t id, bool durable) {
  std::shared_ptr<Attachment> notify;
  {
    const std::lock_guard lock(mutex_);
    const auto it = entries_.find(id);
    if (it == entries_.end()) return;
    if (!durable) {
      entries_.erase(it);  // no answer: the client resends, and that copy is ingested afresh
      return;
    }
    it->second.stage = Stage::committed;
    if (owner_.expired()) return;  // kept: the next connection answers the client's resend
    ready_.push_back(id);
    if (owner_told_) return;
    notify = owner_.lock();
    owner_told_ = notify != nullptr;
  }
  if (notify) notify->committed();
}

void ClientState::take_ready(const Attachment* owner, std::vector<std::pair<std::uint16_t, QoS>>& out) {
  const std::lock_guard lock(mutex_);
  if (owner_.lock().get() != owner) return;  // taken over: the new connection drains them
  owner_told_ = false;
  for (const std::uint16_t id : ready_) {
    const auto it = entries_.find(id);
    if (it == entries_.end() || it->second.stage != Stage::committed) continue;  // answered meanwhile
    out.emplace_back(id, it->second.qos);
    if (it->second.qos == QoS::at_least_once) entries_.erase(it);
  }
  ready_.clear();
}

std::optional<QoS> ClientState::take_committed(std::uint16_t id) {
  const std::lock_guard lock(mutex_);
  const auto it = entries_.find(id);
  if (it == entries_.end() || it->second.stage != Stage::committed) return std::nullopt;
  const QoS qos = it->second.qos;
  if (qos == QoS::at_least_once) entries_.erase(it);
  return qos;
}

void ClientState::mark_committed(std::uint16_t id, QoS qos) {
  const std::lock_guard lock(mutex_);
  entries_[id] = Entry{qos, Stage::committed};
}

void ClientState::forget(std::uint16_t id) {
  const std::lock_guard lock(mutex_);
  entries_.erase(id);
}

bool ClientState::on_pubrel(std::uint16_t id) {
  const std::lock_guard lock(mutex_);
  const auto it = entries_.find(id);
  if (it == entries_.end() || it->second.qos != QoS::exactly_once || it->second.stage != Stage::committed) return false;
  entries_.erase(it);
  return true;
}

std::size_t ClientState::size() const {
  const std::lock_guard lock(mutex_);
  return entries_.size();
}

void ClientState::attach(std::weak_ptr<Attachment> owner) {
  const std::lock_guard lock(mutex_);
  owner_ = std::move(owner);
  // What the previous connection was not told yet is answered when the client resends it.
  ready_.clear();
  owner_told_ = false;
}

void ClientState::detach(const Attachment* owner) {
  const std::lock_guard lock(mutex_);
  const auto current = owner_.lock();
  if (!current || current.get() == owner) {
    owner_.reset();
    ready_.clear();
    owner_told_ = false;
  }
}

std::shared_ptr<Attachment> ClientState::owner() const {
  const std::lock_guard lock(mutex_);
  return owner_.lock();
}

SessionStore::Attached SessionStore::attach(const std::string& key, bool clean_start,
                                            const std::shared_ptr<Attachment>& owner, Clock::time_point now) {
  Attached attached;
  const std::lock_guard lock(mutex_);
  if (now >= next_sweep_) sweep_locked(now);
  auto it = sessions_.find(key);
  if (it != sessions_.end()) {
    attached.taken_from = it->second.state->owner();
    if (attached.taken_from) attached.taken_from->taken_over();  // posts; never re-enters the store
    if (clean_start) {
      it->second.state->attach({});  // the old connection's late completions go nowhere
      sessions_.erase(it);
      it = sessions_.end();
    } else {
      attached.session_present = true;
    }
  }
  if (it == sessions_.end()) it = sessions_.emplace(key, Entry{std::make_shared<ClientState>(), std::nullopt}).first;
  it->second.expires.reset();
  it->second.state->attach(owner);
  attached.state = it->second.state;
  return attached;
}

void SessionStore::detach(const std::string& key, const Attachment* owner, std::chrono::seconds expiry,
                          Clock::time_point now) {
  const std::lock_guard lock(mutex_);
  const auto it = sessions_.find(key);
  if (it == sessions_.end()) return;
  const auto current = it->second.state->owner();
  if (current && current.get() != owner) return;  // taken over: the session is someone else's now
  it->second.state->detach(owner);
  if (expiry.count() <= 0) {
    sessions_.erase(it);
  } else {
    it->second.expires = now + expiry;
  }
}

std::size_t SessionStore::size() const {
  const std::lock_guard lock(mutex_);
  return sessions_.size();
}

void SessionStore::sweep_locked(Clock::time_point now) {
  next_sweep_ = now + kSweepInterval;
  std::erase_if(sessions_, [now](const auto& item) { return item.second.expires && *item.second.expires <= now; });
}

bool LogLimiter::allow(std::chrono::steady_clock::time_point now, std::size_t& suppressed) noexcept {
  if (now < next_) {
    ++suppressed_;
    return false;
  }
  next_ = now + interval_;
  suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace telegate::gateway::mqtt
