#include "ditgen/dist/data_parallel.h"

#include <c10/util/StringUtil.h>

#include "ditgen/core/error.h"

namespace ditgen::dist {

struct DataParallel::Bucket {
  std::vector<size_t> members;  // parameter indices
  at::Tensor flat;              // [sum of their sizes]
  std::vector<bool> arrived;    // per member: its gradient came this step
  size_t ready = 0;             // how many did
  PendingWork work;
};

DataParallel::DataParallel(ProcessGroup& gradients, ProcessGroup& control, std::vector<at::Tensor> parameters,
                           int64_t bucket_bytes)
    : gradients_(gradients), control_(control), parameters_(std::move(parameters)) {
  // Backward runs roughly from the last layer to the first: filling buckets in reverse parameter order lets
  // the first ones complete early.
  place_.resize(parameters_.size());
  std::vector<int64_t> elements;  // per bucket
  for (size_t k = parameters_.size(); k-- > 0;) {
    const at::Tensor& p = parameters_[k];
    const bool full = !buckets_.empty() && (elements.back() + p.numel()) * p.element_size() > bucket_bytes;
    if (buckets_.empty() || full || buckets_.back()->flat.scalar_type() != p.scalar_type()) {
      buckets_.push_back(std::make_unique<Bucket>());
      buckets_.back()->flat = at::empty({0}, p.options().requires_grad(false));  // its type and device, for now
      elements.push_back(0);
    }
    Bucket& b = *buckets_.back();
    place_[k] = {buckets_.size() - 1, b.members.size(), elements.back()};
    b.members.push_back(k);
    elements.back() += p.numel();
  }
  for (size_t i = 0; i < buckets_.size(); ++i) {
    Bucket& b = *buckets_[i];
    b.flat = at::zeros({elements[i]}, b.flat.options());
    b.arrived.assign(b.members.size(), false);
  }
  for (size_t k = 0; k < parameters_.size(); ++k)
    hooks_.push_back(parameters_[k].register_hook([this, k](const at::Tensor& grad) { gradient_ready(k, grad); }));
}

DataParallel::~DataParallel() {
  for (size_t k = 0; k < hooks_.size(); ++k) parameters_[k].remove_hook(hooks_[k]);
}

void DataParallel::gradient_ready(size_t parameter, const at::Tensor& grad) {
  const Place& place = place_[parameter];
  Bucket& b = *buckets_[place.bucket];
  if (place.bucket < next_launch_ || b.arrived[place.member])  // a second gradient in one step
    throw Error(ErrorKind::Runtime, "data-parallel training got a parameter's gradient twice in one step");
  at::NoGradGuard no_grad;
  b.flat.narrow(0, place.offset, grad.numel()).copy_(grad.reshape({-1}));
  b.arrived[place.member] = true;
  ++b.ready;
  launch_ready_buckets(false);
}

void DataParallel::launch_ready_buckets(bool all) {
  while (next_launch_ < buckets_.size()) {
    Bucket& b = *buckets_[next_launch_];
    if (!all && b.ready < b.members.size()) return;
    for (size_t m = 0; m < b.members.size(); ++m)  // no gradient this step: zeros, as the optimizer takes it
      if (!b.arrived[m]) b.flat.narrow(0, place_[b.members[m]].offset, parameters_[b.members[m]].numel()).zero_();
    b.work = gradients_.all_reduce_sum(b.flat);
    ++next_launch_;
  }
}

void DataParallel::finish() {
  launch_ready_buckets(true);
  at::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    b->work.wait();
    b->flat.div_(gradients_.size());
    for (size_t k : b->members) {
      at::Tensor& p = parameters_[k];
      const at::Tensor mean = b->flat.narrow(0, place_[k].offset, p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(mean);  // into the local gradient's memory
      else
        p.mutable_grad() = mean.clone();
    }
    b->ready = 0;
    b->arrived.assign(b->members.size(), false);
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
