_base_ = ['./lgdea_p5_cls_pseudo_b96.py']
# lgdea_p5_cls_pseudo_b96.py with the pseudo-links built by a mean teacher: an exponential
# moving average (momentum 0.99, about 100 steps) of the image encoder, the global projection
# and W_t gives the H_I / H_R from which the links are chosen; the losses stay on the current
# model (LGDEA(relation_ema=...), docs/lgdea_departures.md).
model = dict(relation_ema=0.99)
