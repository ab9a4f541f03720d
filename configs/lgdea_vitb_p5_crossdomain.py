# Cross-domain LGDEA at 5% pairing: CheXpert images join the unpaired-image pool.
_base_ = ['./lgdea_vitb_p5.py']
chexpert_root = 'data/CheXpert-v1.0'
train_dataloader = dict(dataset=dict(extra_image_datasets=[
    dict(type='CheXpertDataset', data_root=chexpert_root, split='train', with_labels=False)]))
