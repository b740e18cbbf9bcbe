"""A rebuild's copy in bounded chunks (facesearch_cluster.snapshot): no Ray, real files."""

import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from facesearch_cluster import snapshot  # noqa: E402


class SnapshotTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.source = os.path.join(self.tmp, "copy")
        self.dest = os.path.join(self.tmp, "staging")
        os.makedirs(os.path.join(self.source, "index"))
        os.mkdir(self.dest)
        self.contents = {"corpus.sqlite": os.urandom(10_000), "index/faces.faiss": os.urandom(2_500),
                         "cluster-ledger-applied.json": b'{"seq": 2}', "index/empty": b""}
        for path, data in self.contents.items():
            with open(os.path.join(self.source, path), "wb") as f:
                f.write(data)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def fetcher(self, files, asked):
        paths = {f["path"] for f in files}

        def fetch(path, offset, size):
            asked.append(size)
            return snapshot.read_chunk(self.source, paths, path, offset, size)
        return fetch

    def test_pull_copies_every_file_in_chunks_no_larger_than_asked(self):
        files = snapshot.manifest(self.source)
        self.assertEqual([f["path"] for f in files], sorted(self.contents))
        asked = []
        snapshot.pull(files, self.fetcher(files, asked), self.dest, chunk_bytes=1024)
        for path, data in self.contents.items():
            with open(os.path.join(self.dest, path), "rb") as f:
                self.assertEqual(f.read(), data, path)
            self.assertEqual(os.stat(os.path.join(self.dest, path)).st_mode & 0o777, 0o600)
        self.assertEqual(max(asked), 1024)
        self.assertEqual(len(asked), 10 + 3 + 1)  # 10,000 + 2,500 + 10 bytes; none for the empty file

    def test_pull_refuses_a_file_that_changed_after_the_manifest(self):
        files = snapshot.manifest(self.source)
        with open(os.path.join(self.source, "index/faces.faiss"), "r+b") as f:
            f.write(bytes([self.contents["index/faces.faiss"][0] ^ 0xFF]))  # same size, another first byte
        with self.assertRaisesRegex(snapshot.SnapshotError, "index/faces.faiss arrived with 2500 bytes and SHA-256"):
            snapshot.pull(files, self.fetcher(files, []), self.dest)
        os.truncate(os.path.join(self.source, "corpus.sqlite"), 100)
        shutil.rmtree(self.dest)
        os.mkdir(self.dest)
        with self.assertRaisesRegex(snapshot.SnapshotError, "corpus.sqlite ended at byte 100 of 10000"):
            snapshot.pull(files, self.fetcher(files, []), self.dest)

    def test_pull_refuses_paths_that_leave_the_staging_folder(self):
        for path in ("../outside", "/etc/passwd", "index/../../x", "", "a//b"):
            with self.subTest(path=path), self.assertRaisesRegex(snapshot.SnapshotError, "would leave its folder"):
                snapshot.pull([{"path": path, "size": 1, "sha256": "0" * 64}], lambda *a: b"x", self.dest)
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "outside")))

    def test_read_chunk_serves_only_the_manifest_files(self):
        with self.assertRaisesRegex(snapshot.SnapshotError, "not in the snapshot"):
            snapshot.read_chunk(self.source, {"corpus.sqlite"}, "../../etc/passwd", 0, 10)
        self.assertEqual(snapshot.read_chunk(self.source, {"corpus.sqlite"}, "corpus.sqlite", 9_990, 100),
                         self.contents["corpus.sqlite"][9_990:])

    def test_manifest_refuses_a_link(self):
        os.symlink("/etc/passwd", os.path.join(self.source, "index", "link"))
        with self.assertRaisesRegex(snapshot.SnapshotError, "is not a regular file"):
            snapshot.manifest(self.source)


if __name__ == "__main__":
    unittest.main()
