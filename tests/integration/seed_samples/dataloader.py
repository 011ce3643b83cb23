# The official page's DataLoader sample, verbatim but for the constants and num_workers, which
# the test rewrites; the loop body records what the loader yields.
import torch
from osstorchconnector import OssIterableDataset

ENDPOINT = "http://oss-cn-beijing-internal.aliyuncs.com"
CONFIG_PATH = "/etc/oss-connector/config.json"
CRED_PATH = "/root/.alibabacloud/credentials"
OSS_URI = "oss://ai-testset/EnglistImg/Img/BadImag/Bmp/Sample001/"

def transform(obj):
    data = obj.read()
    return obj.key, obj.label

iterable_dataset = OssIterableDataset.from_prefix(
    OSS_URI,
    endpoint=ENDPOINT,
    transform=transform,
    cred_path=CRED_PATH,
    config_path=CONFIG_PATH
)

# Create a DataLoader backed by the iterable dataset.
loader = torch.utils.data.DataLoader(
    iterable_dataset,
    batch_size=256,
    num_workers=32,
    prefetch_factor=2
)

# Use the loader in the training loop.
for batch in loader:
    # Perform training operations.
    keys, labels = batch
    for key, label in zip(keys, labels):
        print(f"{key}\t{label}")
