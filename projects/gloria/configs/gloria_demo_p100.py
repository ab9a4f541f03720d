# GLoRIA on the synthetic demo benchmark, 100% of the studies paired (compare with
# configs/demo/clip_demo_p100.py: same data, schedule and number of optimizer steps).
_base_ = ['./_base_/gloria_demo_runtime.py', './_base_/models/gloria_demo.py']
