"""BatchStrongAugment, the second view of LGDEA's image-view term."""
import pytest
import torch

from lgdea.models.utils import BatchStrongAugment

IDENTITY = dict(scale=(1.0, 1.0), rotate=0.0, translate=0.0, contrast=(1.0, 1.0),
                brightness=0.0, noise=0.0, cutout=0.0)


def test_identity_settings_return_the_input_and_defaults_change_it():
    x = torch.linspace(-1, 1, 2 * 3 * 16 * 16).view(2, 3, 16, 16)
    assert torch.allclose(BatchStrongAugment(**IDENTITY)(x), x, atol=1e-5)
    torch.manual_seed(0)
    y = BatchStrongAugment()(x)
    assert y.shape == x.shape and not torch.allclose(y, x, atol=1e-2)
    torch.manual_seed(0)
    assert torch.equal(BatchStrongAugment()(x), y)           # the global RNG decides


def test_cutout_zeroes_one_square_per_sample():
    x = torch.ones(4, 1, 20, 20)
    y = BatchStrongAugment(**dict(IDENTITY, cutout=0.25))(x)
    assert ((y == 0).flatten(1).sum(1) == 25).all()            # a 5 x 5 square each


def test_contrast_and_shift_act_per_sample():
    x = torch.ones(64, 1, 8, 8)
    y = BatchStrongAugment(**dict(IDENTITY, contrast=(0.5, 1.5)))(x)
    per_sample = y.flatten(1)
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample))
    assert per_sample[:, 0].std() > 0.1 and 0.5 <= per_sample.min() <= per_sample.max() <= 1.5


@pytest.mark.parametrize('bad', [dict(scale=(1.2, 1.0)), dict(cutout=1.5), dict(noise=-1)])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError, match='BatchStrongAugment'):
        BatchStrongAugment(**bad)
