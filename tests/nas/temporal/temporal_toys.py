"""Tiny controlled tasks and networks for the temporal-search tests (seeded, a few seconds each)."""

import torch
from torch import nn

from eventstereo.snn.neurons import LIFNode, NeuronSpec, make_neuron, reset_net

T, B, D, H = 6, 32, 8, 32


class OneLayer(nn.Module):
    """Linear -> neuron -> linear read-out, multi-step [T, B, D] -> [T, B, 1]."""

    def __init__(self, spec=None, hidden=H):
        super().__init__()
        self.fc = nn.Linear(D, hidden)
        self.neuron = make_neuron(spec or NeuronSpec(kind="lif", tau=0.5), step_mode="m")
        self.out = nn.Linear(hidden, 1)

    def forward(self, x):
        return self.out(self.neuron(self.fc(x)))

    def reset(self):
        reset_net(self)


class Deep(nn.Module):
    """A stack of Linear -> LIF layers (names ``layers.I.neuron``): gradients reach the first layer only
    through every surrogate after it."""

    def __init__(self, depth=5, width=32, temperature=3.0):
        super().__init__()
        self.layers = nn.ModuleList()
        d = D
        for _ in range(depth):
            block = nn.Module()
            block.fc = nn.Linear(d, width)
            block.neuron = LIFNode(tau=0.5, temperature=temperature, step_mode="m")
            self.layers.append(block)
            d = width
        self.out = nn.Linear(d, 1)

    def forward(self, x):
        for block in self.layers:
            x = block.neuron(block.fc(x))
        return self.out(x)

    def reset(self):
        reset_net(self)


def memory_task(g):
    """The sign of the input is given at step 0 only; the target is read at the last step."""
    s = torch.randint(0, 2, (B,), generator=g).float() * 2 - 1
    x = torch.zeros(T, B, D)
    x[0] = s[:, None] * (0.5 + torch.rand(B, D, generator=g))
    return x, s


def no_memory_task(g):
    """Each step's target is the sign of that step's input: leftover state only hurts."""
    x = torch.randn(T, B, D, generator=g)
    return x, torch.sign(x[..., 0])


def task_loss(task, out, y):
    if task is parity_task:
        return nn.functional.softplus(-out[..., 0] * y).mean()
    if task is regression_task:
        return ((out[..., 0] - y) ** 2).mean()
    if task is memory_task:
        return nn.functional.softplus(-out[-1, :, 0] * y).mean()
    return nn.functional.softplus(-out[..., 0] * y).mean()


def fit(net, search, task, iterations, *, lr=1e-2, seed=1):
    """A plain training loop driving the search through its TrainHook methods; returns the last loss."""
    owned = {id(p) for p in search.parameters()}
    opt = torch.optim.Adam([p for p in net.parameters() if id(p) not in owned], lr=lr)
    g = torch.Generator().manual_seed(seed)
    loss = None
    for it in range(1, iterations + 1):
        x, y = task(g)

        def sequence_loss(x=x, y=y):
            net.reset()
            return task_loss(task, net(x), y)

        loss = search.loss(net, sequence_loss())
        opt.zero_grad()
        loss.backward()
        search.after_backward(net)
        opt.step()
        search.after_iteration(net, it, sequence_loss)
    return float(loss.detach())


def regression_task(g):
    """A real-valued target per step: spikes can only approximate it, a ReLU layer passes it on."""
    x = torch.randn(T, B, D, generator=g)
    return x, x[..., :3].sum(-1)


def parity_task(g):
    """+-1 inputs; each step's target is the product of the first two channels."""
    x = torch.randint(0, 2, (T, B, D), generator=g).float() * 2 - 1
    return x, x[..., 0] * x[..., 1]


def place_first_membranes(net, offset):
    """First layer: tau 0 and each unit reads one input channel with weight +-0.4, so u - theta sits at
    offset +- 0.4: offset 0.4 puts every membrane in the surrogate's tails (|u - theta| = 0.4 or 0.8),
    offset 0 puts half of them at the threshold."""
    first = net.layers[0]
    first.neuron.tau = 0.0
    width = first.fc.out_features
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        w = torch.zeros(width, D)
        signs = torch.randint(0, 2, (width,), generator=g) * 2 - 1
        w[torch.arange(width), torch.arange(width) % D] = 0.4 * signs
        first.fc.weight.copy_(w)
        first.fc.bias.fill_(first.neuron.theta + offset - 0.4)
