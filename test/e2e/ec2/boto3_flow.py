"""Drives VBS's EC2 API with boto3 (Debian's python3-boto3) and prints what it saw as one JSON object.

Arguments: ENDPOINT CA_BUNDLE then, per user, NAME:ACCESS_KEY:SECRET (the first is the main user, the
second another user). The test (ec2-boto3.test.ts) asserts on the JSON; each step catches its
ClientError and records its code, so one failure does not hide the others.
"""
import json
import ssl
import time
import urllib.error
import urllib.request
import uuid
import sys

import boto3
import botocore.config
from botocore.exceptions import ClientError, WaiterError

endpoint, ca = sys.argv[1], sys.argv[2]
users = [u.split(':', 2) for u in sys.argv[3:]]
cfg = botocore.config.Config(retries={'max_attempts': 2, 'mode': 'standard'})


def client(key, secret):
    return boto3.client('ec2', region_name='vbs-1', endpoint_url=endpoint, verify=ca,
                        aws_access_key_id=key, aws_secret_access_key=secret, config=cfg)


TOKEN = str(uuid.uuid4())
ec2 = client(users[0][1], users[0][2])
other = client(users[1][1], users[1][2])
out = {}


def code(fn):
    try:
        fn()
        return 'ok'
    except ClientError as e:
        return e.response['Error']['Code']


def fast(waiter):
    return {'Delay': 1, 'MaxAttempts': 60}


# Zones
out['zones'] = [z['ZoneName'] for z in ec2.describe_availability_zones()['AvailabilityZones']]
out['zone_state'] = [(z['ZoneName'], z['State'], z['RegionName'], z['Messages']) for z in ec2.describe_availability_zones()['AvailabilityZones']]

# CreateVolume with tags, waiters
v = ec2.create_volume(Size=1, AvailabilityZone='vbs-1a', TagSpecifications=[
    {'ResourceType': 'volume', 'Tags': [{'Key': 'Name', 'Value': 'data'}, {'Key': 'team', 'Value': 'blue'}]}])
vol = v['VolumeId']
out['created'] = {'state': v['State'], 'size': v['Size'], 'zone': v['AvailabilityZone'], 'tags': sorted(t['Key'] for t in v['Tags'])}
ec2.get_waiter('volume_available').wait(VolumeIds=[vol], WaiterConfig=fast('a'))
out['available'] = ec2.describe_volumes(VolumeIds=[vol])['Volumes'][0]['State']

# Idempotent create
t1 = ec2.create_volume(Size=1, AvailabilityZone='vbs-1a', ClientToken=TOKEN)['VolumeId']
t2 = ec2.create_volume(Size=1, AvailabilityZone='vbs-1a', ClientToken=TOKEN)['VolumeId']
out['token_same'] = t1 == t2
out['token_mismatch'] = code(lambda: ec2.create_volume(Size=2, AvailabilityZone='vbs-1a', ClientToken=TOKEN))
out['bad_type'] = code(lambda: ec2.create_volume(Size=1, AvailabilityZone='vbs-1a', VolumeType='io1', Iops=100))
out['bad_zone'] = code(lambda: ec2.create_volume(Size=1, AvailabilityZone='us-east-1a'))
ec2.get_waiter('volume_available').wait(VolumeIds=[t1], WaiterConfig=fast('a'))

# Filters
f = lambda **kw: sorted(x['VolumeId'] for x in ec2.describe_volumes(Filters=[{'Name': k.replace('_', '-').replace('tag-Name', 'tag:Name'), 'Values': v} for k, v in kw.items()])['Volumes'])
out['filter_tag'] = f(**{'tag_Name': ['data']}) == [vol]
out['filter_tag_key'] = f(tag_key=['team']) == [vol]
out['filter_status'] = sorted(f(status=['available'])) == sorted([vol, t1])
out['filter_zone'] = len(f(availability_zone=['vbs-1a'])) == 2
out['filter_size'] = len(f(size=['1'])) == 2
out['filter_volume_id'] = f(volume_id=[vol]) == [vol]
out['filter_unknown'] = code(lambda: ec2.describe_volumes(Filters=[{'Name': 'nonsense', 'Values': ['x']}]))

# ModifyVolume: a volume grows; DescribeVolumesModifications follows it to completed
m = ec2.modify_volume(VolumeId=t1, Size=2)['VolumeModification']
out['modify'] = {'volume': m['VolumeId'] == t1, 'original': m['OriginalSize'], 'target': m['TargetSize']}
for _ in range(120):
    mods = ec2.describe_volumes_modifications(VolumeIds=[t1])['VolumesModifications']
    if mods and mods[0]['ModificationState'] in ('completed', 'failed'):
        break
    time.sleep(0.5)
out['modified'] = {'state': mods[0]['ModificationState'], 'size': ec2.describe_volumes(VolumeIds=[t1])['Volumes'][0]['Size'],
                   'by_state': [x['VolumeId'] for x in ec2.describe_volumes_modifications(Filters=[{'Name': 'modification-state', 'Values': ['completed']}])['VolumesModifications']] == [t1]}
out['shrink'] = code(lambda: ec2.modify_volume(VolumeId=t1, Size=1))
out['modify_other'] = code(lambda: other.modify_volume(VolumeId=t1, Size=3))

# Attach by instance id (the VM's own name, scan resolver), device names, waiter in-use
a = ec2.attach_volume(VolumeId=vol, InstanceId='vm1', Device='/dev/sdf')
out['attach'] = {'state': a['State'], 'device': a['Device'], 'instance': a['InstanceId']}
ec2.get_waiter('volume_in_use').wait(VolumeIds=[vol], WaiterConfig=fast('a'))
d = ec2.describe_volumes(VolumeIds=[vol])['Volumes'][0]
out['in_use'] = {'state': d['State'], 'attachments': [(x['InstanceId'], x['Device'], x['State']) for x in d['Attachments']]}
out['filter_attached'] = f(**{'attachment.instance-id': ['vm1']}) == [vol]
out['filter_device'] = f(**{'attachment.device': ['/dev/xvdf']}) == [vol]
# EC2's wildcards: * any run, ? one character, \ escapes
out['wildcards'] = {
    'tag_star': f(**{'tag_Name': ['d*']}) == [vol],
    'tag_question': f(**{'tag_Name': ['da?a']}) == [vol],
    'tag_too_short': f(**{'tag_Name': ['d?']}),
    'tag_escaped': f(**{'tag_Name': ['\\*']}),
    'device': f(**{'attachment.device': ['/dev/sd*']}) == [vol],
    'status': f(status=['in-*']) == [vol],
    'volume_id': f(volume_id=['vol-*']) == sorted([vol, t1]),
    'size_refused': code(lambda: ec2.describe_volumes(Filters=[{'Name': 'size', 'Values': ['1*']}])),
}
out['delete_attached'] = code(lambda: ec2.delete_volume(VolumeId=vol))
out['detach_wrong_device'] = code(lambda: ec2.detach_volume(VolumeId=vol, Device='/dev/sdg'))

# Snapshots
s = ec2.create_snapshot(VolumeId=vol, Description='first', TagSpecifications=[{'ResourceType': 'snapshot', 'Tags': [{'Key': 'k', 'Value': 'v'}]}])
snap = s['SnapshotId']
out['snapshot'] = {'state': s['State'], 'owner': s['OwnerId'], 'size': s['VolumeSize'], 'description': s['Description']}
ec2.get_waiter('snapshot_completed').wait(SnapshotIds=[snap], WaiterConfig=fast('a'))
out['snapshot_completed'] = ec2.describe_snapshots(SnapshotIds=[snap])['Snapshots'][0]['State']
out['snapshots_self'] = [x['SnapshotId'] for x in ec2.describe_snapshots(OwnerIds=['self'])['Snapshots']] == [snap]
out['snapshots_tag'] = [x['SnapshotId'] for x in ec2.describe_snapshots(Filters=[{'Name': 'tag:k', 'Values': ['v']}])['Snapshots']] == [snap]
out['snapshots_description'] = [[x['SnapshotId'] for x in ec2.describe_snapshots(Filters=[{'Name': 'description', 'Values': [d]}])['Snapshots']] == [snap] for d in ['first', 'f*t', 'fir']]
out['snapshots_wildcard'] = [x['SnapshotId'] for x in ec2.describe_snapshots(Filters=[{'Name': 'tag:k', 'Values': ['?']}, {'Name': 'volume-id', 'Values': [vol[:6] + '*']}])['Snapshots']] == [snap]

# Detach, waiter available
dt = ec2.detach_volume(VolumeId=vol, InstanceId='vm1', Device='/dev/sdf')
out['detach'] = dt['State']
ec2.get_waiter('volume_available').wait(VolumeIds=[vol], WaiterConfig=fast('a'))

# Sharing (createVolumePermission), the other user's view
other_name = users[1][0]
out['other_sees_snapshot_before'] = code(lambda: other.describe_snapshots(SnapshotIds=[snap]))
ec2.modify_snapshot_attribute(SnapshotId=snap, Attribute='createVolumePermission', OperationType='add', UserIds=[other_name])
perm = ec2.describe_snapshot_attribute(SnapshotId=snap, Attribute='createVolumePermission')
out['permission'] = [p['UserId'] for p in perm['CreateVolumePermissions']]
out['other_sees_snapshot'] = [x['SnapshotId'] for x in other.describe_snapshots(SnapshotIds=[snap])['Snapshots']] == [snap]
ov = other.create_volume(SnapshotId=snap, AvailabilityZone='vbs-1a')
out['other_restored'] = {'size': ov['Size'], 'snapshot': ov['SnapshotId'] == snap}
other.get_waiter('volume_available').wait(VolumeIds=[ov['VolumeId']], WaiterConfig=fast('a'))
ec2.reset_snapshot_attribute(SnapshotId=snap, Attribute='createVolumePermission')
out['permission_after_reset'] = ec2.describe_snapshot_attribute(SnapshotId=snap, Attribute='createVolumePermission')['CreateVolumePermissions']
out['other_snapshot_after_reset'] = code(lambda: other.describe_snapshots(SnapshotIds=[snap]))

# Ownership: another user's volume is not found, for every action on it
out['other_describe'] = code(lambda: other.describe_volumes(VolumeIds=[vol]))
out['other_delete'] = code(lambda: other.delete_volume(VolumeId=vol))
out['other_attach'] = code(lambda: other.attach_volume(VolumeId=vol, InstanceId='vm2', Device='/dev/sdh'))
out['other_snapshot'] = code(lambda: other.create_snapshot(VolumeId=vol))
out['other_tag'] = code(lambda: other.create_tags(Resources=[vol], Tags=[{'Key': 'x', 'Value': 'y'}]))
out['other_list'] = [x['VolumeId'] for x in other.describe_volumes()['Volumes']] == [ov['VolumeId']]

# Tags
ec2.create_tags(Resources=[vol, snap], Tags=[{'Key': 'env', 'Value': 'prod'}])
tags = ec2.describe_tags(Filters=[{'Name': 'key', 'Values': ['env']}])['Tags']
out['tags'] = sorted((t['ResourceId'] == vol, t['ResourceType'], t['Value']) for t in tags)
out['tags_wildcard'] = sorted(t['ResourceType'] for t in ec2.describe_tags(Filters=[{'Name': 'key', 'Values': ['e?v']}, {'Name': 'value', 'Values': ['pro*']}])['Tags'])
ec2.delete_tags(Resources=[vol], Tags=[{'Key': 'env', 'Value': 'other'}])
out['tag_kept_on_value_mismatch'] = len(ec2.describe_tags(Filters=[{'Name': 'resource-id', 'Values': [vol]}, {'Name': 'key', 'Values': ['env']}])['Tags'])
ec2.delete_tags(Resources=[vol], Tags=[{'Key': 'env'}])
out['tag_deleted'] = len(ec2.describe_tags(Filters=[{'Name': 'resource-id', 'Values': [vol]}, {'Name': 'key', 'Values': ['env']}])['Tags'])
out['tag_reserved'] = code(lambda: ec2.create_tags(Resources=[vol], Tags=[{'Key': 'aws:x', 'Value': 'y'}]))
out['tag_limit'] = code(lambda: ec2.create_tags(Resources=[vol], Tags=[{'Key': f'k{i}', 'Value': 'v'} for i in range(51)]))

# Presigned URLs (the query-string form), opened with GET as a browser or curl would
tls = ssl.create_default_context(cafile=ca)


def get(url):
    try:
        with urllib.request.urlopen(url, context=tls, timeout=60) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


as_post = get(ec2.generate_presigned_url('describe_volumes', Params={'VolumeIds': [vol]}, ExpiresIn=300))
as_get = get(ec2.generate_presigned_url('describe_volumes', Params={'Filters': [{'Name': 'tag:Name', 'Values': ['dat*']}]}, ExpiresIn=300, HttpMethod='GET'))
change = ec2.generate_presigned_url('create_tags', Params={'Resources': [vol], 'Tags': [{'Key': 'via', 'Value': 'presigned url'}]}, ExpiresIn=60, HttpMethod='GET')
first, again = get(change), get(change)
wrong = get(client(users[0][1], 'x' * 40).generate_presigned_url('describe_volumes', ExpiresIn=60))
out['presigned'] = {
    'signed_for_post': [as_post[0], vol in as_post[1]],
    'signed_for_get': [as_get[0], vol in as_get[1]],
    'change': first[0],
    'tagged': [t['Value'] for t in ec2.describe_tags(Filters=[{'Name': 'key', 'Values': ['via']}])['Tags']],
    'replay': [again[0], '<Code>AuthFailure</Code>' in again[1]],
    'wrong_secret': [wrong[0], '<Code>SignatureDoesNotMatch</Code>' in wrong[1]],
}

# Pages: 6 more volumes, pages of 5 by the paginator
extra = [ec2.create_volume(Size=1, AvailabilityZone='vbs-1a')['VolumeId'] for _ in range(6)]
pages = list(ec2.get_paginator('describe_volumes').paginate(PaginationConfig={'PageSize': 5}))
out['pages'] = [len(p['Volumes']) for p in pages]
out['paged_ids_unique'] = len({x['VolumeId'] for p in pages for x in p['Volumes']}) == sum(len(p['Volumes']) for p in pages)
out['dry_run'] = code(lambda: ec2.create_volume(Size=1, AvailabilityZone='vbs-1a', DryRun=True))
out['max_results_too_small'] = code(lambda: ec2.describe_volumes(MaxResults=4))
ec2.get_waiter('volume_available').wait(VolumeIds=extra, WaiterConfig=fast('a'))

# Delete snapshot, delete volumes, waiter deleted
ec2.delete_snapshot(SnapshotId=snap)
out['snapshot_gone'] = code(lambda: ec2.describe_snapshots(SnapshotIds=[snap]))
for x in [vol, t1, *extra]:
    ec2.delete_volume(VolumeId=x)
ec2.get_waiter('volume_deleted').wait(VolumeIds=[vol], WaiterConfig=fast('a'))
out['deleted'] = code(lambda: ec2.describe_volumes(VolumeIds=[vol]))

print(json.dumps(out))
