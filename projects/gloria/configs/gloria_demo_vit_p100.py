# GLoRIA on the synthetic demo benchmark on the shared demo ViT (the image encoder of every
# other method), 100% of the studies paired; same data, schedule and number of optimizer steps
# as configs/demo/clip_demo_p100.py. Its one departure (train_caption_section='impression') and
# the measurements behind it: ./_base_/models/gloria_demo_vit.py, projects/gloria/README.md.
_base_ = ['./_base_/gloria_demo_runtime.py', './_base_/models/gloria_demo_vit.py']
