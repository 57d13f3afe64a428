import torch

from mtlheads.training.balancer import MovingAverageBalancer


def test_moving_average_weights_by_hand():
    b = MovingAverageBalancer(window=2)
    assert b("a", torch.tensor(2.0)).item() == 2.0  # only task seen: w = 2/2
    # means: a=2, b=8 -> w_b = 10/8
    assert b("b", torch.tensor(8.0)).item() == 8.0 * 10 / 8
    # a's window [2, 4] -> mean 3; w_a = (3 + 8) / 3
    assert abs(b("a", torch.tensor(4.0)).item() - 4.0 * 11 / 3) < 1e-6
    # window 2 drops the oldest: a = [4, 6] -> 5
    assert abs(b("a", torch.tensor(6.0)).item() - 6.0 * 13 / 5) < 1e-6


def test_gradient_flows_through_loss_not_weight():
    b = MovingAverageBalancer(window=5)
    b("a", torch.tensor(1.0))
    x = torch.tensor(3.0, requires_grad=True)
    out = b("b", x * 1.0)
    out.backward()
    assert abs(x.grad.item() - (1.0 + 3.0) / 3.0) < 1e-6


def test_state_round_trip():
    b = MovingAverageBalancer(window=3)
    for v in (1.0, 2.0, 3.0, 4.0):
        b("a", torch.tensor(v))
    c = MovingAverageBalancer(window=3)
    c.load_state_dict(b.state_dict())
    assert c("a", torch.tensor(5.0)).item() == b("a", torch.tensor(5.0)).item()
