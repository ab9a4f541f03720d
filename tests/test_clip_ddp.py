"""2-process gloo DDP on CPU: CLIP's loss on gathered features and its parameters after one
optimizer step equal a single process on the same global batch (docs/method.md, Distributed)."""
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from lgdea.registry import MODELS
from lgdea.utils import register_all_modules

from conftest import tiny_bert, tiny_tokenizer, tiny_vit
from utils_dist import run_distributed


def _model_cfg():
    text = tiny_bert()
    text['config'].update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return dict(type='CLIPBaseline', image_encoder=tiny_vit(), text_encoder=text,
                tokenizer=tiny_tokenizer(), embed_dims=16)


def _global_batch(n=8):
    from mmpretrain.structures import DataSample
    g = torch.Generator().manual_seed(0)
    images = torch.randn(n, 1, 32, 32, generator=g)
    words = ['effusion', 'edema', 'cardiomegaly', 'atelectasis']
    samples = []
    for i in range(n):
        ds = DataSample(metainfo=dict(study_id=f's{i // 2 if i < 4 else i}', paired=True))
        ds.text = f'{words[i % 4]} on the {"left" if i % 3 else "right"} side {i}'
        samples.append(ds)
    return images, samples


def _step(model, images, samples):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    module = model.module if isinstance(model, DDP) else model
    out = model(images, samples, samples, mode='loss')  # through DDP's forward (its hooks)
    opt.zero_grad()
    out['loss_contrastive'].backward()
    opt.step()
    return ({k: v.detach().clone() for k, v in module.state_dict().items()},
            out['loss_contrastive'].item())


def _initial_state():
    register_all_modules()
    torch.manual_seed(0)
    model = MODELS.build(_model_cfg())
    model.init_weights()
    return model.state_dict()


def _ddp_rank(rank, world_size, state):
    register_all_modules()
    torch.manual_seed(rank)
    model = MODELS.build(_model_cfg())
    model.load_state_dict(state)
    ddp = DDP(model)
    images, samples = _global_batch()
    per = images.shape[0] // world_size
    part = slice(rank * per, (rank + 1) * per)
    params, loss = _step(ddp, images[part], samples[part])
    return dict(params=params, loss=loss)


def test_clip_ddp_two_process_matches_single_process():
    state = _initial_state()
    results = run_distributed(_ddp_rank, world_size=2, args=(state, ))
    model = MODELS.build(_model_cfg())
    model.load_state_dict(state)
    images, samples = _global_batch()
    ref_params, ref_loss = _step(model, images, samples)
    for res in results:
        assert abs(res['loss'] - ref_loss) < 1e-5  # logged value = global-batch loss
        for k, v in ref_params.items():
            torch.testing.assert_close(res['params'][k], v, rtol=1e-4, atol=1e-5)
    # the comparison can fail: one step moved the parameters
    assert any(not torch.allclose(state[k], ref_params[k], atol=1e-4) for k in ref_params
               if state[k].dtype.is_floating_point)
