"""The data sets made from CIFAR-10's files for ticket transfer (lt_core/data/datasets.py, SUBSETS) and
train_fraction: the stated classes and counts, relabelling, disjoint halves of each class, a smaller
training split of the same distribution, and a network for five classes."""

import pytest
import torch

from lt_core.config import make
from lt_core.data import datasets
from lt_core.procedures.imp import new_model


@pytest.fixture(scope="module")
def cifar():
    return datasets.load("cifar10")


def test_class_splits_hold_their_classes_relabelled(cifar):
    low, high = datasets.load("cifar10_classes_0_4"), datasets.load("cifar10_classes_5_9")
    for part, classes in ((low, range(5)), (high, range(5, 10))):
        assert part.num_classes == 5 and set(part.y_train.unique().tolist()) == set(range(5))
        assert len(part.y_test) == 5000 and len(part.y_train) + len(part.y_val) == 25000
        original = torch.isin(cifar.y_train, torch.tensor(list(classes)))
        assert len(part.y_train) == int(original.sum())
        assert torch.equal(part.x_train, cifar.x_train[original])  # the same images, in file order
        assert torch.equal(part.y_train, cifar.y_train[original] - classes[0])
    assert not torch.equal(low.mean, cifar.mean)  # statistics of its own training split


def test_halves_split_each_class_in_two_and_keep_validation_and_test(cifar):
    a, b = datasets.load("cifar10_half_a"), datasets.load("cifar10_half_b")
    assert len(a.y_train) + len(b.y_train) == len(cifar.y_train)
    for c in range(10):
        n = int((cifar.y_train == c).sum())
        assert int((a.y_train == c).sum()) == n // 2 and int((b.y_train == c).sum()) == n - n // 2
    assert torch.equal(a.x_val, cifar.x_val) and torch.equal(b.x_test, cifar.x_test)
    both = torch.cat([a.x_train, b.x_train]).flatten(1)
    assert len(torch.unique(both, dim=0)) >= len(cifar.y_train) - 50  # disjoint (up to CIFAR's few duplicates)


def test_train_fraction_keeps_a_share_of_each_class(cifar):
    small = datasets.load("cifar10", train_fraction=0.1)
    for c in range(10):
        assert int((small.y_train == c).sum()) == round(0.1 * int((cifar.y_train == c).sum()))
    assert torch.equal(small.x_test, cifar.x_test) and torch.equal(small.y_val, cifar.y_val)
    assert make({"train_fraction": 0.1}).digest() != make({}).digest()
    with pytest.raises(Exception, match="train_fraction"):
        make({"train_fraction": 0})


def test_a_network_for_five_classes_has_five_outputs():
    net = new_model(make({"dataset": "cifar10_classes_5_9", "model": "conv2"}), 0)
    assert net.fc3.weight.shape == (5, 256)
