"""devstack/moto_patches.py keeps a bucket listing from failing when keys are deleted while it runs
(moto's threaded server: a big batch's purge deletes beside its listings), with the same answers
as moto's own listing otherwise."""
from __future__ import annotations

import boto3
from moto import mock_aws
from moto.s3.utils import _VersionedKeyStore


def test_the_patch_is_installed_for_the_suite_and_the_local_stack():
    import devstack.moto_patches as patches
    assert patches._installed
    assert _VersionedKeyStore.items.__module__ == patches.__name__


class Version(str):
    def dispose(self):   # what moto's keys do when they leave the store
        pass


def test_a_key_deleted_while_the_store_is_walked_does_not_fail_the_walk():
    store = _VersionedKeyStore()
    for name in "abcd":
        store[name] = Version(f"{name}1")
    store["b"] = Version("b2")            # two versions: the latest is listed
    seen = []
    for key, value in store.items():
        seen.append((key, value))
        if key == "a":
            store.pop("c")               # gone after the walk began
    assert seen[:2] == [("a", "a1"), ("b", "b2")] and ("d", "d1") in seen
    assert list(store.values()) == ["a1", "b2", "d1"]
    assert dict(store.lists()) == {"a": ["a1"], "b": ["b1", "b2"], "d": ["d1"]}


def test_a_bucket_lists_as_before():
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="bucket-b")
        for key in ("a/1", "a/2", "b/1"):
            s3.put_object(Bucket="bucket-b", Key=key, Body=b"x")
        s3.put_object(Bucket="bucket-b", Key="a/2", Body=b"xy")
        s3.delete_object(Bucket="bucket-b", Key="a/1")
        got = s3.list_objects_v2(Bucket="bucket-b", Prefix="a/")["Contents"]
        assert [(o["Key"], o["Size"]) for o in got] == [("a/2", 2)]
        assert s3.list_objects_v2(Bucket="bucket-b", Delimiter="/")["CommonPrefixes"] == [{"Prefix": "a/"}, {"Prefix": "b/"}]
