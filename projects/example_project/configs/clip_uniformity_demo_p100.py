# CLIP + a uniformity term on the image embeddings, on the synthetic demo benchmark.
#   python tools/train.py projects/example_project/configs/clip_uniformity_demo_p100.py
_base_ = [
    '../../../configs/_base_/default_runtime.py',
    '../../../configs/_base_/datasets/synthetic_cxr_demo.py',
    '../../../configs/_base_/models/clip_demo.py',
    '../../../configs/_base_/schedules/demo_iter.py',
]
# import the plugin so that its components are registered before the model is built
custom_imports = dict(imports=['lgdea', 'projects.example_project.example_project'],
                      allow_failed_imports=False)

# the inherited CLIP demo model, with the new type and its two extra arguments
model = dict(type='CLIPWithUniformityLoss',
             uniformity_loss=dict(type='UniformityLoss', t=2.0),
             uniformity_weight=0.1)

pair_ratio = 1.0
train_dataloader = dict(dataset=dict(pair_ratio=pair_ratio))
