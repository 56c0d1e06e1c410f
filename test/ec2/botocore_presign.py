"""Prints, as JSON, requests signed by botocore's own signers (Debian's python3-botocore) in every
form it makes for EC2: boto3's generate_presigned_url (signed for POST, the operation's method, and
for GET), the query-string signer over extra headers (Date, Content-Type, a custom one), and the
header signer. sigv4-botocore.test.ts checks that VBS's verifier accepts each as it would arrive.

Arguments: HOST ACCESS_KEY SECRET.
"""
import json
import sys
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

host, key, secret = sys.argv[1:4]
endpoint = f'https://{host}/'
ec2 = boto3.client('ec2', region_name='vbs-1', endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret)
creds = Credentials(key, secret)
cases = []


def url_case(name, method, url, headers=None, body=''):
    parts = urlsplit(url)
    cases.append({'name': name, 'method': method, 'target': parts.path + ('?' + parts.query if parts.query else ''),
                  'headers': {k.lower(): v for k, v in (headers or {}).items()}, 'body': body})


# boto3's presigned URL: signed for the operation's method (POST), used as a GET (a browser, curl) or a POST.
signed_for_post = ec2.generate_presigned_url('describe_volumes', Params={'MaxResults': 5}, ExpiresIn=300)
url_case('generate_presigned_url, used with GET', 'GET', signed_for_post)
url_case('generate_presigned_url, used with POST', 'POST', signed_for_post)
url_case('generate_presigned_url HttpMethod=GET', 'GET', ec2.generate_presigned_url('describe_volumes', Params={'Filters': [{'Name': 'status', 'Values': ['in-use', 'avail*']}]}, ExpiresIn=60, HttpMethod='GET'))
url_case('generate_presigned_url of a change', 'GET', ec2.generate_presigned_url('create_tags', Params={'Resources': ['vol-00000000000000001'], 'Tags': [{'Key': 'a b', 'Value': 'c/d~e'}]}, ExpiresIn=60, HttpMethod='GET'))

# The query-string signer over more headers than host: each signed header travels with the request.
for name, extra in [('Date', {'Date': 'Mon, 07 Dec 2026 12:00:00 GMT'}),
                    ('X-Amz-Date header', {'X-Amz-Date': 'XX'}),
                    ('Content-Type and a custom header', {'Content-Type': 'text/plain', 'X-Vbs-Trace': '  two  spaces '})]:
    req = AWSRequest(method='GET', url=endpoint + '?Action=DescribeVolumes&Version=2016-11-15', headers=dict(extra))
    auth = SigV4QueryAuth(creds, 'ec2', 'vbs-1', expires=120)
    auth.add_auth(req)
    if 'X-Amz-Date' in extra:
        # A client that also sends the date as a header gives the one it signed.
        ts = dict(p.split('=', 1) for p in urlsplit(req.url).query.split('&'))['X-Amz-Date']
        req.headers['X-Amz-Date'] = ts
        req = AWSRequest(method='GET', url=endpoint + '?Action=DescribeVolumes&Version=2016-11-15', headers={'X-Amz-Date': ts})
        auth.add_auth(req)
    url_case(f'SigV4QueryAuth signing {name}', 'GET', req.url, dict(req.headers))

# The header signer with a Date header and a custom one (botocore replaces Date by X-Amz-Date).
body = 'Action=DescribeVolumes&Version=2016-11-15'
req = AWSRequest(method='POST', url=endpoint, data=body, headers={'Content-Type': 'application/x-www-form-urlencoded; charset=utf-8', 'Date': 'Mon, 07 Dec 2026 12:00:00 GMT', 'X-Vbs-Trace': 'x'})
SigV4Auth(creds, 'ec2', 'vbs-1').add_auth(req)
url_case('SigV4Auth with Date and a custom header', 'POST', req.url, dict(req.headers), body)

print(json.dumps(cases))
