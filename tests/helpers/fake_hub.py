"""A stand-in for huggingface_hub.HfApi that records the calls and keeps every uploaded file."""
from pathlib import Path

import pytest

from timm_gcp.hub import publish

SHA = '0123456789abcdef0123456789abcdef01234567'


class FakeHfApi:
    """Stands in for huggingface_hub.HfApi: records the calls and keeps a copy of every uploaded file."""
    calls = []
    uploads = {}

    def __init__(self, token=None, library_name=None, library_version=None):
        self.calls.append(('init', dict(token=token, library_name=library_name)))

    def create_repo(self, repo_id, private=False, exist_ok=False, **kwargs):
        self.calls.append(('create_repo', dict(repo_id=repo_id, private=private, exist_ok=exist_ok)))
        return type('RepoUrl', (), {'repo_id': repo_id})()

    def upload_folder(self, repo_id, folder_path, revision=None, commit_message=None, **kwargs):
        self.calls.append(('upload_folder', dict(repo_id=repo_id, revision=revision, commit_message=commit_message)))
        self.uploads[repo_id] = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        return f'https://huggingface.co/{repo_id}/commit/{SHA}'


def install_fake_hub(monkeypatch: pytest.MonkeyPatch) -> type:
    """Replace the Hub client of `timm_gcp.hub.publish` by a fresh FakeHfApi (the `fake_hub` fixture)."""
    FakeHfApi.calls, FakeHfApi.uploads = [], {}
    monkeypatch.setattr(publish, 'HfApi', FakeHfApi)
    return FakeHfApi
