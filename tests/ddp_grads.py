"""Run under torchrun (gloo, CPU): one DDP step on a fixed global batch; rank 0 saves the gradients."""

import sys

import torch
import torch.distributed as dist

from colorize_rt.core.constants import NUM_BINS
from colorize_rt.models import create_model
from colorize_rt.models.decode import bins_tensor
from colorize_rt.training.train import forward_loss


def global_batch():
    g = torch.Generator().manual_seed(123)
    return torch.rand(8, 1, 32, 32, generator=g) * 100, torch.randn(8, 2, 8, 8, generator=g) * 30


def fresh_model():
    torch.manual_seed(0)
    return create_model("mobile", width=0.125)


def main(out: str) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    net = fresh_model()
    ddp = torch.nn.parallel.DistributedDataParallel(net)
    L, ab = global_batch()
    per = L.shape[0] // world
    sl = slice(rank * per, (rank + 1) * per)
    loss = forward_loss(ddp, L[sl], ab[sl], torch.linspace(0.5, 2, NUM_BINS), bins_tensor(), None)
    loss.backward()
    if rank == 0:
        torch.save({k: p.grad for k, p in net.named_parameters()}, out)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
