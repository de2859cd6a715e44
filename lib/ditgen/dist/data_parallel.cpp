#include "ditgen/dist/data_parallel.h"

#include <c10/util/StringUtil.h>

#include "ditgen/core/error.h"

namespace ditgen::dist {

struct DataParallel::Bucket {
  std::vector<size_t> members;  // parameter indices
  at::Tensor flat;              // [sum of their sizes]
  size_t ready = 0;             // members whose gradient arrived this step
  std::vector<bool> arrived;    // per member
  PendingWork work;
  bool launched = false;
};

DataParallel::DataParallel(ProcessGroup& gradients, ProcessGroup& control, std::vector<at::Tensor> parameters,
                           int64_t bucket_bytes)
    : gradients_(gradients), control_(control), parameters_(std::move(parameters)) {
  place_.resize(parameters_.size());
  // Backward runs roughly from the last layer to the first: filling buckets in reverse parameter order lets
  // the first ones complete early.
  for (size_t k = parameters_.size(); k-- > 0;) {
    const at::Tensor& p = parameters_[k];
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    if (buckets_.empty() || buckets_.back()->flat.scalar_type() != p.scalar_type() ||
        (buckets_.back()->flat.numel() * p.element_size() + bytes > bucket_bytes && !buckets_.back()->members.empty())) {
      buckets_.push_back(std::make_unique<Bucket>());
      buckets_.back()->flat = at::empty({0}, p.options().requires_grad(false));
    }
    Bucket& b = *buckets_.back();
    place_[k] = {buckets_.size() - 1, b.flat.numel()};
    b.members.push_back(k);
    b.flat = at::empty({b.flat.numel() + p.numel()}, b.flat.options());
  }
  for (auto& b : buckets_) {
    b->flat.zero_();
    b->arrived.assign(b->members.size(), false);
  }
  for (size_t k = 0; k < parameters_.size(); ++k)
    hooks_.push_back(parameters_[k].register_hook([this, k](const at::Tensor& grad) { gradient_ready(k, grad); }));
}

DataParallel::~DataParallel() {
  for (size_t k = 0; k < hooks_.size(); ++k) parameters_[k].remove_hook(hooks_[k]);
}

void DataParallel::gradient_ready(size_t parameter, const at::Tensor& grad) {
  const auto [bucket, offset] = place_[parameter];
  Bucket& b = *buckets_[bucket];
  const size_t member = std::find(b.members.begin(), b.members.end(), parameter) - b.members.begin();
  if (b.launched || b.arrived[member])  // a second gradient in one step (a parameter used twice is summed once)
    throw Error(ErrorKind::Runtime, "data-parallel training got a parameter's gradient twice in one step");
  at::NoGradGuard no_grad;
  b.flat.narrow(0, offset, grad.numel()).copy_(grad.reshape({-1}));
  b.arrived[member] = true;
  ++b.ready;
  launch_ready_buckets(false);
}

void DataParallel::launch_ready_buckets(bool all) {
  while (next_launch_ < buckets_.size()) {
    Bucket& b = *buckets_[next_launch_];
    if (!all && b.ready < b.members.size()) return;
    for (size_t m = 0; m < b.members.size(); ++m)  // no gradient this step: zeros, as the optimizer takes it
      if (!b.arrived[m]) b.flat.narrow(0, place_[b.members[m]].second, parameters_[b.members[m]].numel()).zero_();
    b.work = gradients_.all_reduce_sum(b.flat);
    b.launched = true;
    ++next_launch_;
  }
}

void DataParallel::finish() {
  launch_ready_buckets(true);
  at::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    b->work.wait();
    b->flat.div_(gradients_.size());
    for (size_t m = 0; m < b->members.size(); ++m) {
      at::Tensor& p = parameters_[b->members[m]];
      at::Tensor mean = b->flat.narrow(0, place_[b->members[m]].second, p.numel()).view(p.sizes());
      p.mutable_grad() = mean.clone();
    }
    b->ready = 0;
    b->arrived.assign(b->members.size(), false);
    b->launched = false;
  }
  next_launch_ = 0;
}

bool DataParallel::any(bool mine) { return control_.any(mine); }

void DataParallel::check_same(const std::vector<double>& fingerprint, const std::string& what) {
  at::Tensor mine = at::tensor(fingerprint, at::kDouble);
  const std::vector<at::Tensor> all = control_.all_gather(mine);
  for (size_t r = 1; r < all.size(); ++r)
    if (!at::equal(all[r], all[0]))
      throw Error(ErrorKind::Runtime, c10::str("rank ", r, " starts from other ", what, " than rank 0 (is the output "
                                               "folder the same for every rank, on a shared file system?)"));
}

}  // namespace ditgen::dist
