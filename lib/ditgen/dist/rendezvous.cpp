#include "ditgen/dist/rendezvous.h"

#include <thread>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "ditgen/core/error.h"

namespace ditgen::dist {

namespace {

std::string key(const std::string& name, int rank) { return "ditgen/" + name + "/" + std::to_string(rank); }

}  // namespace

Rendezvous::Rendezvous(const DistEnv& env, std::chrono::milliseconds timeout) : env_(env) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<std::uint16_t>(env.master_port);
  options.isServer = env.rank == 0 && !env.agent_store;
  options.numWorkers = env.agent_store ? std::nullopt : std::optional<std::size_t>(env.world_size);
  options.waitWorkers = !env.agent_store;
  options.timeout = timeout;
  try {
    store_ = c10::make_intrusive<c10d::TCPStore>(env.master_addr, options);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::Runtime, "rank " + std::to_string(env.rank) + " could not meet the other processes at " +
                                        env.master_addr + ":" + std::to_string(env.master_port) + ": " +
                                        std::string(e.what()).substr(0, std::string(e.what()).find('\n')));
  }
}

Rendezvous::~Rendezvous() = default;

void Rendezvous::barrier(const std::string& name) {
  store_->set(key(name, env_.rank), std::vector<uint8_t>{1});
  std::vector<std::string> all;
  for (int r = 0; r < env_.world_size; ++r) all.push_back(key(name, r));
  try {
    store_->wait(all);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::Runtime, "the processes of the run did not all reach '" + name + "' (a rank failed?)");
  }
}

std::vector<std::optional<nlohmann::json>> Rendezvous::gather(const std::string& name, const nlohmann::json& value,
                                                              const std::function<bool()>& stop) {
  const std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (env_.rank != 0) {
    store_->set(key(name, env_.rank), std::vector<uint8_t>(text.begin(), text.end()));
    return {};
  }
  std::vector<std::optional<nlohmann::json>> out{value};
  const auto start = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> stopped;
  for (int r = 1; r < env_.world_size; ++r) {
    const std::string k = key(name, r);
    bool arrived = false;
    while (!(arrived = store_->check({k}))) {
      const auto now = std::chrono::steady_clock::now();
      if (!stopped && stop && stop()) stopped = now;
      if (stopped && now - *stopped > std::chrono::seconds(10)) break;
      if (now - start > store_->getTimeout())
        throw Error(ErrorKind::Runtime, "rank " + std::to_string(r) + " did not report its '" + name + "' (it failed?)");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (!arrived) {
      out.emplace_back();
      continue;
    }
    const std::vector<uint8_t> bytes = store_->get(k);
    try {
      out.emplace_back(nlohmann::json::parse(bytes.begin(), bytes.end()));
    } catch (const nlohmann::json::exception&) {
      throw Error(ErrorKind::Runtime, "rank " + std::to_string(r) + " reported a damaged '" + name + "'");
    }
  }
  return out;
}

nlohmann::json Rendezvous::broadcast(const std::string& name, const nlohmann::json& value) {
  if (env_.rank == 0) {
    const std::string text = value.dump();
    store_->set(key(name, 0), std::vector<uint8_t>(text.begin(), text.end()));
    return value;
  }
  try {
    const std::vector<uint8_t> bytes = store_->get(key(name, 0));
    return nlohmann::json::parse(bytes.begin(), bytes.end());
  } catch (const std::exception&) {
    throw Error(ErrorKind::Runtime, "rank 0 did not share its '" + name + "' (it failed?)");
  }
}

}  // namespace ditgen::dist
