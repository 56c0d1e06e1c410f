"""An independent SOAP client: Python's zeep loads the served WSDL (over mutual
TLS) and calls every VBS operation, printing one JSON line per call. Used by
test/interop/zeep.test.ts; nothing here is hand-edited to fit our service."""
import json
import sys

import requests
from zeep import Client, Settings
from zeep.exceptions import Fault
from zeep.helpers import serialize_object
from zeep.transports import Transport

url, cert, key, ca = sys.argv[1:5]
session = requests.Session()
session.cert = (cert, key)
session.verify = ca
# Environment CA bundles (REQUESTS_CA_BUNDLE...) would override verify: trust only VBS's CA.
session.trust_env = False
client = Client(url + "?wsdl", transport=Transport(session=session), settings=Settings(strict=True))
svc = client.service


def out(name, value):
    print(json.dumps({"call": name, "result": serialize_object(value, dict)}, default=str), flush=True)


def fault(name, fn):
    try:
        fn()
        print(json.dumps({"call": name, "fault": None}), flush=True)
    except Fault as f:
        detail = f.detail
        code = detail.find(".//{urn:vbs:2026:vbs}code").text if detail is not None else None
        print(json.dumps({"call": name, "fault": f.message, "code": code}), flush=True)


vol = svc.CreateVolume(size=1, comment="from zeep")
out("CreateVolume", vol)
vid = vol.volumeId
out("DescribeVolumes", svc.DescribeVolumes(volumeId=[vid]))
# A page: zeep builds the filter records and maxResults from the WSDL.
out("DescribeVolumes.page", svc.DescribeVolumes(filter=[{"name": "commentPrefix", "value": ["from zeep"]}], maxResults=5))
fault("DescribeVolumes.missing", lambda: svc.DescribeVolumes(volumeId=["vol-00000000000000000"]))
fault("CreateVolume.bad", lambda: svc.CreateVolume(size=0))

import time
for _ in range(200):
    if svc.DescribeVolumes(volumeId=[vid]).volume[0].status == "available":
        break
    time.sleep(0.1)

snap = svc.CreateSnapshot(volumeId=vid, comment="zeep snap")
out("CreateSnapshot", snap)
for _ in range(200):
    if svc.DescribeSnapshots(snapshotId=[snap.snapshotId]).snapshot[0].status == "completed":
        break
    time.sleep(0.1)
out("DescribeSnapshots", svc.DescribeSnapshots(snapshotId=[snap.snapshotId]))
out("AttachVolume", svc.AttachVolume(volumeId=vid, vmmHost="localhost", vmId="vm3", device="xvdz", mode="r"))
out("DetachVolume", svc.DetachVolume(volumeId=vid))
out("DeleteSnapshot", svc.DeleteSnapshot(snapshotId=snap.snapshotId))
out("DeleteVolume", svc.DeleteVolume(volumeId=vid))
