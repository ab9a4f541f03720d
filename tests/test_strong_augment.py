"""BatchStrongAugment, and LGDEA's weak-to-strong pseudo-link option that uses it."""
import pytest
import torch

from lgdea.models.utils import BatchStrongAugment

from test_lgdea_model import _batch, _lgdea, _loss

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


class _Recorder(torch.nn.Module):
    """Wraps a propagation module and records the H_I it receives."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.seen = inner, []

    def forward(self, h_i, *args, **kwargs):
        self.seen.append(h_i.clone())
        return self.inner(h_i, *args, **kwargs)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.inner, name)


@pytest.mark.parametrize('image_embed', ['H_I', 'cls'])
def test_relations_come_from_the_loaded_view_and_the_loss_from_the_augmented_one(image_embed):
    torch.manual_seed(0)
    base = _lgdea(propagation=dict(type='PseudoLabelPropagation', threshold=0.0),
                  image_embed=image_embed)
    strong = _lgdea(propagation=dict(type='PseudoLabelPropagation', threshold=0.0),
                    image_embed=image_embed, pseudo_student_augment=dict(type='BatchStrongAugment'))
    strong.load_state_dict(base.state_dict())
    base.eval(), strong.eval()                     # no dropout: the two views compare exactly
    for m in (base, strong):
        m.propagation = _Recorder(m.propagation)
    images, samples, reports = _batch()
    torch.manual_seed(1)
    out_base = _loss(base, images, samples, reports)
    torch.manual_seed(1)
    out_strong = _loss(strong, images, samples, reports)
    h_base, h_teacher = base.propagation.seen[-1], strong.propagation.seen[-1]
    # the relations see the un-augmented H_I of every image
    assert torch.allclose(h_teacher, h_base, atol=1e-5)
    # the loss sees augmented unpaired images: their H_I, hence the alignment, differ
    assert not torch.allclose(out_strong['loss_align'], out_base['loss_align'])
    # without propagation nothing is augmented: the same losses as the plain model
    for m in (base, strong):
        m.set_phase(('rec', 'p', 'u', 'align'), propagate=False)
    torch.manual_seed(2)
    off_base = _loss(base, images, samples, reports)
    torch.manual_seed(2)
    off_strong = _loss(strong, images, samples, reports)
    for k in ('loss_align', 'loss_rec', 'loss_p'):
        assert torch.equal(off_base[k], off_strong[k]), k


def test_a_fully_paired_batch_is_not_augmented():
    torch.manual_seed(0)
    model = _lgdea(propagation=dict(type='PseudoLabelPropagation'),
                   pseudo_student_augment=dict(type='BatchStrongAugment'))
    model.eval()
    images, samples, reports = _batch(n_paired=8, n_unpaired=0)
    data = model.data_preprocessor(dict(inputs=images, data_samples=samples, reports=reports),
                                   True)
    same, teacher = model._student_view(data['images'], data['data_samples'])
    assert teacher is None and same is data['images']
