"""Dataset readers and the checks that run before any image is embedded."""

from __future__ import annotations

import pytest
from eval_data import write_class_folders, write_clip_benchmark, write_shards

from clipline.flows.demo_sample import DIGIT_NAMES
from clipline.pipelines.errors import ClipLineError
from clipline.pipelines.eval.datasets import DatasetOptions, load_dataset
from clipline.pipelines.eval.prompts import DEFAULT_TEMPLATES

ZEROSHOT = DatasetOptions(("zeroshot",))


def test_clip_benchmark_layout_gives_labels_captions_classnames_and_templates(tmp_path, digits_120):
    images, labels = digits_120
    root = write_clip_benchmark(tmp_path / "cb", images, labels, per_shard=50)  # 3 tars: 0, 1, 2
    dataset = load_dataset(str(root), DatasetOptions(("zeroshot", "retrieval")))
    assert dataset.kind == "clip-benchmark" and len(dataset) == 120
    assert dataset.labels.tolist() == labels
    assert dataset.classnames == tuple(DIGIT_NAMES)
    assert dataset.templates == ("a handwritten {c}", "a photo of the digit {c}", "{c}")
    assert dataset.captions[0] == (f"a handwritten {DIGIT_NAMES[labels[0]]}", f"the number {DIGIT_NAMES[labels[0]]}")
    assert [s.uri.rsplit("/", 1)[1] for s in dataset.sources[::50]] == ["0.tar", "1.tar", "2.tar"]


def test_its_own_training_split_is_read_for_linear_probes_only(tmp_path, digits_120):
    images, labels = digits_120
    root = write_clip_benchmark(tmp_path / "cb", images[:60], labels[:60])
    write_clip_benchmark(root, images[60:], labels[60:], split="train")
    assert len(load_dataset(str(root), DatasetOptions(("linear-probe",))).train) == 60
    assert load_dataset(str(root), ZEROSHOT).train is None


def test_folder_classes_are_the_subfolder_names(tmp_path, digits_120):
    images, labels = digits_120
    dataset = load_dataset(str(write_class_folders(tmp_path / "folder", images, labels)), ZEROSHOT)
    assert dataset.kind == "folder" and dataset.classnames == tuple(sorted(DIGIT_NAMES))
    assert sorted(dataset.classnames[i] for i in dataset.labels) == sorted(DIGIT_NAMES[i] for i in labels)
    assert dataset.templates == DEFAULT_TEMPLATES


def test_shards_take_labels_from_key_json_and_captions_from_key_txt(tmp_path, digits_120):
    images, labels = digits_120
    root = write_shards(tmp_path / "shards", images, labels)
    dataset = load_dataset(str(root / "00000.tar"), DatasetOptions(("zeroshot", "retrieval")))
    assert dataset.kind == "shards" and dataset.labels.tolist() == labels
    assert dataset.captions[3] == (f"a handwritten {DIGIT_NAMES[labels[3]]}",)
    assert load_dataset(str(root), ZEROSHOT).keys == dataset.keys  # the folder of shards reads the same


def test_csv_paths_are_relative_to_the_csv_and_a_header_is_skipped(tmp_path, digits_120):
    images, labels = digits_120
    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(images[i])
    rows = "path,label\n" + "".join(f"{i}.png,{DIGIT_NAMES[labels[i]]}\n" for i in range(3))
    (tmp_path / "list.csv").write_text(rows)
    names = [DIGIT_NAMES[label] for label in labels[:3]]  # three different digits, in this order
    (tmp_path / "names.txt").write_text("\n".join(names))
    dataset = load_dataset(str(tmp_path / "list.csv"), DatasetOptions(("zeroshot",), str(tmp_path / "names.txt")))
    assert dataset.kind == "csv" and dataset.keys == ("0.png", "1.png", "2.png")
    assert dataset.labels.tolist() == [0, 1, 2] and dataset.sources[0].uri == str(tmp_path / "0.png")


def test_a_kind_prefix_forces_the_reader(tmp_path, digits_120):
    images, labels = digits_120
    root = write_clip_benchmark(tmp_path / "cb", images[:20], labels[:20])
    assert load_dataset(f"shards:{root}/test/0.tar", DatasetOptions(("retrieval",))).kind == "shards"


# Bad input: each is a ClipLineError naming the problem, raised while the dataset is read.

def test_a_dataset_with_no_images_is_an_error(tmp_path):
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(ClipLineError, match="has no images"):
        load_dataset(str(tmp_path / "empty"), ZEROSHOT)


def test_a_class_with_no_samples_is_an_error(tmp_path, digits_120):
    images, labels = digits_120
    root = write_class_folders(tmp_path / "folder", images[:30], labels[:30])
    (root / "zebra").mkdir()
    with pytest.raises(ClipLineError, match="1 class.* have no samples: zebra"):
        load_dataset(str(root), ZEROSHOT)


def test_a_label_missing_from_the_class_names_is_an_error(tmp_path, digits_120):
    images, labels = digits_120
    root = write_class_folders(tmp_path / "folder", images[:30], labels[:30])
    (tmp_path / "names.txt").write_text("\n".join(n for n in DIGIT_NAMES if n != "seven"))
    with pytest.raises(ClipLineError, match="label 'seven' of sample seven/.* is missing from the class names"):
        load_dataset(str(root), DatasetOptions(("zeroshot",), classnames_uri=str(tmp_path / "names.txt")))


def test_a_class_index_beyond_the_class_names_is_an_error(tmp_path, digits_120):
    images, labels = digits_120
    root = write_clip_benchmark(tmp_path / "cb", images[:30], labels[:30])
    (root / "classnames.txt").write_text("zero\none\n")
    with pytest.raises(ClipLineError, match="is missing from the 2 class names"):
        load_dataset(str(root), ZEROSHOT)


def test_a_template_without_c_is_an_error(tmp_path, digits_120):
    images, labels = digits_120
    root = write_clip_benchmark(tmp_path / "cb", images[:30], labels[:30], templates=("a photo of {c}", "a photo"))
    with pytest.raises(ClipLineError, match="template 'a photo' .* has no \\{c\\}"):
        load_dataset(str(root), ZEROSHOT)


def test_retrieval_without_captions_is_an_error(tmp_path, digits_120):
    images, labels = digits_120
    root = write_clip_benchmark(tmp_path / "cb", images[:30], labels[:30], captions=False)
    with pytest.raises(ClipLineError, match="retrieval needs captions"):
        load_dataset(str(root), DatasetOptions(("retrieval",)))


def test_a_missing_dataset_is_an_error(tmp_path):
    with pytest.raises(ClipLineError, match="does not exist"):
        load_dataset(str(tmp_path / "nowhere"), ZEROSHOT)
