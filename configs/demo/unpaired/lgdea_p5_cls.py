_base_ = ['../lgdea_demo_p5_repaired.py']
# The repaired LGDEA at 5% with H_I = norm(W_g I^g), the encoder's global token, in the
# alignment, the propagation graphs and retrieval (LGDEA(image_embed='cls')); the lesions keep
# feeding L_p, L_u and the grounding maps.
model = dict(image_embed='cls')
