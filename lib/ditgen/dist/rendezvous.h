// The meeting point of a distributed run's processes: PyTorch's c10d TCPStore on MASTER_ADDR:MASTER_PORT
// (rank 0 hosts it, or torchrun's agent does), used to wait for each other and to hand small JSON results to
// rank 0, and to introduce the processes of a collective group (process_group.h) to each other.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <c10/util/intrusive_ptr.h>
#include <nlohmann/json.hpp>

#include "ditgen/dist/launch.h"

namespace c10d {
class Store;
}

namespace ditgen::dist {

class Rendezvous {
 public:
  // Joins the run `env` describes, waiting up to `timeout` for every process to arrive. Error(Runtime) when
  // they do not, naming the address.
  explicit Rendezvous(const DistEnv& env, std::chrono::milliseconds timeout = std::chrono::minutes(10));
  ~Rendezvous();

  const DistEnv& env() const { return env_; }
  // Returns once every process has called it with the same `name`. Error(Runtime) after the timeout.
  void barrier(const std::string& name);
  // Every process's `value` at rank 0, in rank order (rank 0's own first); an empty vector elsewhere. Once
  // `stop` says so (an interrupted run), rank 0 waits 10 s more, then leaves the missing ones empty (a rank
  // that died sends nothing). Error(Runtime) after the timeout, or when a value is not JSON.
  std::vector<std::optional<nlohmann::json>> gather(const std::string& name, const nlohmann::json& value,
                                                    const std::function<bool()>& stop = {});
  // Rank 0's `value`, in every process.
  nlohmann::json broadcast(const std::string& name, const nlohmann::json& value);
  // The store itself, for c10d's collective backends.
  const c10::intrusive_ptr<c10d::Store>& store() const { return store_; }

 private:
  DistEnv env_;
  c10::intrusive_ptr<c10d::Store> store_;
};

}  // namespace ditgen::dist
