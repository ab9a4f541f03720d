_base_ = ['./lgdea_p5_cls_pseudo_b96_replinks.py']
# The report-link variant (every unpaired report linked to the image of its nearest paired
# report, report_link_cos=-1) with the relations built by the mean teacher of
# lgdea_p5_cls_pseudo_b96_ema.py (EMA 0.99 of the image encoder, global projection and W_t):
# both the image pseudo-links and the report links are read from the averaged model.
model = dict(relation_ema=0.99, propagation=dict(report_link_cos=-1.0))
