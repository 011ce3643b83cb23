# The official page's from_prefix sample, verbatim but for the constants, which the test rewrites.
from osstorchconnector import OssIterableDataset

ENDPOINT = "http://oss-cn-beijing-internal.aliyuncs.com"
CONFIG_PATH = "/etc/oss-connector/config.json"
CRED_PATH = "/root/.alibabacloud/credentials"
OSS_URI = "oss://ai-testset/EnglistImg/Img/BadImag/Bmp/Sample001/"

# Build the dataset from a URI prefix. All objects under the prefix are included.
iterable_dataset = OssIterableDataset.from_prefix(
    OSS_URI,
    endpoint=ENDPOINT,
    cred_path=CRED_PATH,
    config_path=CONFIG_PATH
)

# Iterate over the dataset. Each item is a DataObject with key, size, and read().
for item in iterable_dataset:
    print(item.key)    # object key (path within the bucket)
    print(item.size)   # object size in bytes
    content = item.read()
    print(len(content))
