import importlib.util
import os.path as osp

import torch

from lgdea.registry import MODELS

from conftest import tiny_bert, tiny_tokenizer, tiny_vit

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
spec = importlib.util.spec_from_file_location('export_image_encoder',
                                              osp.join(ROOT, 'tools/export_image_encoder.py'))
export = importlib.util.module_from_spec(spec)
spec.loader.exec_module(export)


def test_vit_export_loads_into_timm_and_gives_the_same_features():
    import timm
    model = MODELS.build(dict(type='CLIPBaseline', image_encoder=tiny_vit(),
                              text_encoder=tiny_bert(), tokenizer=tiny_tokenizer(),
                              embed_dims=16)).eval()
    model.init_weights()
    state = export.export_state(model, 'timm')
    vit = timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=0,
                            img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                            mlp_ratio=2.0, in_chans=1).eval()
    vit.load_state_dict(state, strict=True)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        ours = model.image_encoder(x)
        theirs = vit.forward_features(x)
    torch.testing.assert_close(theirs[:, 0], ours['global'], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(theirs[:, 1:], ours['local'], rtol=1e-4, atol=1e-4)


def test_resnet_export_loads_into_torchvision():
    import torchvision
    model = MODELS.build(dict(type='CLIPBaseline',
                              image_encoder=dict(type='CXRImageEncoder',
                                                 backbone=dict(type='mmpretrain.ResNet',
                                                               depth=18)),
                              text_encoder=tiny_bert(), tokenizer=tiny_tokenizer(),
                              embed_dims=16)).eval()
    state = export.export_state(model, 'auto')
    net = torchvision.models.resnet18(num_classes=10)
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) == {'fc.weight', 'fc.bias'}


def test_vit_key_table_round_trips_every_vit_key():
    """One table serves both directions: mmpretrain -> timm -> mmpretrain is the identity on
    every key of a ViT, and the timm names are timm's."""
    from mmpretrain.models import VisionTransformer

    from lgdea.utils.ckpt_convert import find_converter
    from lgdea.utils.vit_keys import (convert_timm_vit, mmpretrain_vit_to_timm_key,
                                      timm_vit_to_mmpretrain_key)
    vit = VisionTransformer(arch=dict(embed_dims=16, num_layers=2, num_heads=2,
                                      feedforward_channels=32), img_size=16, patch_size=8)
    keys = list(vit.state_dict())
    timm_keys = [mmpretrain_vit_to_timm_key(k) for k in keys]
    assert [timm_vit_to_mmpretrain_key(k) for k in timm_keys] == keys
    assert {'patch_embed.proj.weight', 'blocks.1.mlp.fc2.bias', 'blocks.0.norm1.weight',
            'norm.weight', 'cls_token', 'pos_embed'} <= set(timm_keys)
    assert find_converter('timm_vit', 'lgdea.utils') is convert_timm_vit
