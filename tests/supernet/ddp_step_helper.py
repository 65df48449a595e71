"""One training step on one rank (imported by test_ddp.py, and run under torchrun by it).

Usage: torchrun --standalone --nproc_per_node 2 ddp_step_helper.py DATA_DIR OUT.pt
"""

import copy
import sys

import torch

from latkit.supernet.data import BatchPlan, open_data
from latkit.supernet.model import ElasticMobileNetV3
from latkit.supernet.schedules import get_schedule
from latkit.supernet.space import get_space
from latkit.supernet.train import (
    DistContext,
    TrainConfig,
    init_distributed,
    make_optimizer,
    plan_phases,
    train_step,
)


def one_step(data_dir: str, rank: int, world: int, batch: int) -> dict:
    """Weights after one compound-phase step (5 subnets, distillation) from a seeded init.

    The model runs with eval-mode BatchNorm: per-rank batch statistics would otherwise differ
    from full-batch ones (see test_ddp.py). The soft labels come from a frozen teacher (a copy of
    the initial model, eval mode too), as with ``kd_teacher="full"``.
    """
    torch.set_num_threads(1)
    cfg = TrainConfig(space="compofa-w1.0", schedule="compofa", data=data_dir, resolutions=(128,),
                      batch_size=batch, seed=7, lr_scale=500.0)
    space = get_space(cfg.space)
    data = open_data(data_dir)
    plan = BatchPlan(len(data.train), batch, (128,), cfg.seed, rank, world)
    sched = get_schedule("compofa", space).scaled(0.05)
    pp = plan_phases(sched, plan.steps_per_epoch)[1]
    torch.manual_seed(0)
    model = ElasticMobileNetV3(space, n_classes=data.n_classes, kernel_transform=False)
    model.eval()
    teacher = copy.deepcopy(model).requires_grad_(False)
    with torch.no_grad():  # a teacher unlike the student, so the soft labels matter
        for p in teacher.parameters():
            p.mul_(1.5)
    opt = make_optimizer(model, cfg)
    train_step(model, opt, cfg, space, data, plan, pp, pp.start + 1,
               DistContext(rank, world, 0, "cpu"), teacher=teacher)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


if __name__ == "__main__":
    import torch.distributed as dist

    ctx = init_distributed("cpu")
    assert ctx.world_size == 2 and dist.get_backend() == "gloo"
    state = one_step(sys.argv[1], ctx.rank, ctx.world_size, batch=2)
    if ctx.rank == 0:
        torch.save(state, sys.argv[2])
    dist.destroy_process_group()
