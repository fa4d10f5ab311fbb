"""Evaluators: how the engine turns a proposed architecture into a validation accuracy.

``TabularEvaluator`` reads the NAS-Bench-201 table (optionally with Gaussian noise that mimics
seed-to-seed variation) and charges the table's simulated training time; ``SupernetEvaluator``
trains the shared supernet weights for one epoch along the proposed single path and measures the
path's top-1 on the validation split.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ddpnas.data import ImageSet, iterate_batches
from ddpnas.nasbench import NB201Bench
from ddpnas.spaces.base import Arch, SearchSpace

NB201_EPOCHS = 200


class TabularEvaluator:
    """Reward = the table's 200-epoch validation accuracy of ``metric`` (+ noise), as a fraction."""

    def __init__(
        self,
        bench: NB201Bench,
        space: SearchSpace,
        *,
        seed: int,
        noise_std: float = 0.0,
        metric: str = "cifar10_valid_valid_acc",
        hp: str = "200",
    ) -> None:
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.bench = bench
        self.space = space
        self.noise_std = float(noise_std)
        self.metric = metric
        self.hp = hp
        self.rng = np.random.Generator(np.random.PCG64([seed, 201]))

    def train(self, arch: Arch, epoch: int, generator: torch.Generator) -> dict[str, float]:
        """Nothing to train; charge one epoch of the table's simulated training time."""
        record = self.bench.query(self.space.arch_to_str(arch), hp="200")
        return {"sim_seconds": record["cifar10_valid_train_seconds"] / NB201_EPOCHS}

    def evaluate(self, arch: Arch) -> dict[str, float]:
        accuracy = self.bench.query(self.space.arch_to_str(arch), hp=self.hp)[self.metric]
        if self.noise_std:
            accuracy += self.rng.normal(0.0, self.noise_std)
        return {"valid_acc": float(np.clip(accuracy / 100.0, 0.0, 1.0))}

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class SupernetEvaluator:
    """Single-path training of a supernet with SGD + cosine LR over the planned search epochs."""

    def __init__(
        self,
        model: nn.Module,
        train_set: ImageSet,
        valid_set: ImageSet,
        *,
        epochs: int,
        batch_size: int = 64,
        lr: float = 0.025,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        nesterov: bool = True,
        grad_clip: float = 5.0,
        device: torch.device | str = "cpu",
        eval_batch_size: int = 256,
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.train_set = train_set
        self.valid_set = valid_set
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.grad_clip = grad_clip
        self.optimizer = torch.optim.SGD(
            model.parameters(),
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=epochs)
        self.criterion = nn.CrossEntropyLoss()

    def train(self, arch: Arch, epoch: int, generator: torch.Generator) -> dict[str, float]:
        self.model.train()
        total_loss = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        seen = 0
        for x, y in iterate_batches(
            self.train_set.images,
            self.train_set.labels,
            self.batch_size,
            shuffle=True,
            augment=True,
            generator=generator,
            device=self.device,
        ):
            self.optimizer.zero_grad(set_to_none=True)
            logits = self.model(x, arch)
            loss = self.criterion(logits, y)
            loss.backward()
            if self.grad_clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
            self.optimizer.step()
            total_loss += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
        self.scheduler.step()
        return {
            "train_loss": total_loss.item() / max(seen, 1),
            "train_acc": correct.item() / max(seen, 1),
        }

    @torch.no_grad()
    def evaluate(self, arch: Arch) -> dict[str, float]:
        self.model.eval()
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for x, y in iterate_batches(
            self.valid_set.images,
            self.valid_set.labels,
            self.eval_batch_size,
            shuffle=False,
            augment=False,
            generator=torch.Generator(),
            device=self.device,
        ):
            correct += (self.model(x, arch).argmax(1) == y).sum()
        return {"valid_acc": correct.item() / len(self.valid_set.labels)}

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
