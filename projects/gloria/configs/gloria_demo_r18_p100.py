# GLoRIA on its tiny ResNet-18 (./_base_/models/gloria_demo.py) with the training captions of
# the ViT demo configs: one random sentence of the IMPRESSION section
# (train_caption_section='impression', projects/gloria/README.md, "Demo on the shared ViT").
# An extra, labelled row of the demo benchmark: its image encoder is not the shared one, so it
# compares encoders as much as methods. gloria_demo_p100.py is the same model with the
# official captions (a sentence of the whole report).
_base_ = ['./gloria_demo_p100.py']
model = dict(train_caption_section='impression')
