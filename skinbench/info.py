"""One registry describing every task, dataset and approach (the MedMNIST ``info.py`` idea).

Everything else (CLI, runner, tables, docs) reads these dictionaries; a fact lives here once.
Estimators are named by ``"module:Class"`` strings so listing the registry imports no TensorFlow.
Installed plugins (entry-point groups ``skinbench.approaches`` / ``skinbench.datasets``, see
:mod:`skinbench.plugins` and docs/plugins.md) join ``APPROACHES`` / ``DATASETS`` on their first use,
marked by their ``origin``, so every reader of the registry sees them without importing them at start-up.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

from skinbench.errors import ConfigError


@dataclass(frozen=True)
class TaskInfo:
    name: str
    kind: Literal["classification", "segmentation"]
    title: str
    default_dataset: str
    datasets: tuple[str, ...]
    #: segmentation targets scored separately (one model per target); empty for classification
    targets: tuple[str, ...] = ()
    primary_metric: str = "accuracy"
    #: published numbers we compare against (free text, shown in tables)
    reference: str = ""
    #: extra keyword arguments for a dataset's adapter when it serves this task
    dataset_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: other real datasets whose records benchmarks/regenerate.py also keeps current (a named variant
    #: of the default, kept so that older rows stay comparable)
    variants: tuple[str, ...] = ()
    #: targets scored only by approaches with ``all_targets`` (multi-output models, the baselines beside them)
    more_targets: tuple[str, ...] = ()
    #: an empty truth or predicted mask is an ordinary answer (attributes absent from most images); when
    #: False, a set of masks that all read empty is refused (:func:`skinbench.data.images.check_masks_vary`)
    empty_masks_normal: bool = False

    def known_targets(self) -> tuple[str, ...]:
        """Every target a run of this task may score: ``targets``, then ``more_targets``."""
        return self.targets + self.more_targets

    def regenerated_datasets(self) -> tuple[str, ...]:
        """The default dataset, then the variants: what a full regeneration runs this task on."""
        return (self.default_dataset, *self.variants)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    title: str
    #: ``"module:function"`` returning a :class:`skinbench.data.base.Dataset`
    adapter: str
    #: default sub-folder of the data root
    folder: str
    source: str
    #: files the adapter expects, relative to the dataset folder (shown when they are missing)
    expected: tuple[str, ...]
    class_names: tuple[str, ...] = ()
    #: for binary tasks, the class counted as positive
    positive_class: str | None = None
    #: segmentation targets this dataset has masks for
    targets: tuple[str, ...] = ()
    manifest: str | None = None
    license: str = ""
    #: who supplies it: ``SUITE`` for skinbench's own, else a plugin's "package version" (shown in tables)
    origin: str = "skinbench"
    #: tasks a plugin dataset serves (the suite's are listed in ``TaskInfo.datasets``)
    tasks: tuple[str, ...] = ()
    #: a plugin dataset's manifest file (absolute path; ``manifest`` names the suite's data_manifests/ files)
    manifest_path: str | None = None


@dataclass(frozen=True)
class ApproachInfo:
    name: str
    #: ``"module:Class"``: a scikit-learn style estimator (fit / predict_proba)
    estimator: str
    family: Literal["baseline", "classical", "deep"]
    tasks: tuple[str, ...]
    title: str
    params: dict[str, Any] = field(default_factory=dict)
    #: what must exist beyond the data (weights) on every task it runs, shown in tables when missing; a
    #: task-specific need is stated per task (a GPU: ``gpu_tasks``): read it through :meth:`needs_for`
    needs: str = ""
    #: overrides for a seconds-long smoke run on tiny synthetic data (`skinbench smoke`, CI)
    smoke_params: dict[str, Any] = field(default_factory=dict)
    #: tasks on which training needs a GPU for practical run times: benchmarks/regenerate.py keeps (does
    #: not retrain) such records on a machine without one
    gpu_tasks: tuple[str, ...] = ()
    #: per-task overrides of ``params`` (one architecture, tuned differently for lesions and for globules)
    task_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: a classifier that also trains on masks (the Y-Net head): the runner passes the Dataset's mask
    #: paths of this target to ``fit(X, y, groups=..., masks=...)``
    needs_masks: str | None = None
    #: also scored on the task's ``more_targets`` (see :func:`segmentation_targets`)
    all_targets: bool = False
    #: one model predicts every target it is scored on: fit gets an (n_images, n_targets) table of mask
    #: paths and the estimator's ``output`` parameter picks the target predict_proba returns
    multi_target: bool = False
    #: who supplies it: ``SUITE`` for skinbench's own, else a plugin's "package version" (tables mark such rows)
    origin: str = "skinbench"
    #: (class, tolerance) where this approach reproduces otherwise than its estimator class declares
    #: (``reproducibility`` of :mod:`skinbench.approaches.base`; read through ``provenance.reproducibility``)
    reproducibility: tuple[str, float] | None = None

    @property
    def contributed(self) -> bool:
        """A plugin's approach (entry point or ``--approach module:Class``), not one of the suite's."""
        return self.origin != SUITE

    def needs_for(self, task: str | None) -> str:
        """What a run of ``task`` needs beyond the data (a table's note on a row not run): ``needs``, and
        a GPU where ``task`` is one of ``gpu_tasks``. ``task`` None (the approach list): every task's,
        the GPU remark naming its tasks."""
        gpu = ""
        if self.gpu_tasks and (task is None or task in self.gpu_tasks):
            gpu = "a GPU for practical run times" + (f" on {', '.join(self.gpu_tasks)}" if task is None else "")
        return "; ".join(x for x in (self.needs, gpu) if x)

    def params_for(self, task: str | None) -> dict[str, Any]:
        """The registered hyper-parameters for ``task``: ``params`` updated with its ``task_params``."""
        return {**self.params, **self.task_params.get(task or "", {})}


#: ``origin`` of the suite's own approaches and datasets
SUITE = "skinbench"


class _Registry(dict):
    """A dict that adds the installed plugins' entries on first read (:func:`skinbench.plugins.load`):
    ``import skinbench.info`` stays free of entry-point scanning, and every reader sees the plugins."""

    def _load(self) -> None:
        if not _PLUGINS_LOADED[0]:
            _PLUGINS_LOADED[0] = True  # first: a plugin reading the registry while loading does not recurse
            from skinbench import plugins

            plugins.load(APPROACHES, DATASETS)

    def __getitem__(self, key: str) -> Any:
        self._load()
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self._load()
        return super().__contains__(key)

    def __iter__(self):  # type: ignore[override]
        self._load()
        return super().__iter__()

    def __len__(self) -> int:
        self._load()
        return super().__len__()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self._load()
        return super().get(key, default)

    def keys(self):  # type: ignore[override]
        self._load()
        return super().keys()

    def values(self):  # type: ignore[override]
        self._load()
        return super().values()

    def items(self):  # type: ignore[override]
        self._load()
        return super().items()


_PLUGINS_LOADED = [False]

HAM_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
#: the five dermoscopic attributes of ISIC 2018 Task 2 (its score pools all five)
ISIC2018_ATTRIBUTES = ("globules", "streaks", "pigment_network", "milia_like_cyst", "negative_network")

TASKS: dict[str, TaskInfo] = {
    t.name: t
    for t in [
        TaskInfo("task1", "classification", "Benign vs malignant (ISIC 2016 Part 3)", "isic2016_task3",
                 ("isic2016_task3", "synthetic", "generic"), primary_metric="ap",
                 reference="BoVW+SVM: acc 0.776, P 0.417, R 0.333, F1 0.370; VGG16: acc 0.823, P 0.557, "
                           "R 0.52, F1 0.54, AUC 0.762; all-benign: acc 0.802"),
        TaskInfo("task2", "classification", "Seven-class diagnosis (HAM10000, lesion-aware split)", "ham10000",
                 ("ham10000", "synthetic", "generic"), primary_metric="balanced_accuracy",
                 dataset_kwargs={"synthetic": {"labels": "dx"}},
                 reference="VGG16 fine-tuned: acc 0.81, macro F1 0.73 on a random (lesion-leaking) split"),
        TaskInfo("task3", "segmentation", "Globules and streaks (ISIC 2016 Part 2B / 2018 Task 2 masks)",
                 "isic2018_task2_all", ("isic2018_task2_all", "isic2018_task2", "isic2016_part2b", "synthetic", "generic"),
                 targets=("globules", "streaks"), primary_metric="jaccard_set", variants=("isic2018_task2",),
                 more_targets=ISIC2018_ATTRIBUTES[2:], empty_masks_normal=True,
                 reference="Keras U-Net: 'Dice 0.86' with foreground precision 0.015, recall 0.08; "
                           "best ISIC 2018 attribute Jaccard 0.473 (five attributes pooled)"),
        TaskInfo("task4", "segmentation", "Lesion segmentation (HAM10000 masks)", "ham10000",
                 ("ham10000", "synthetic", "generic"), targets=("lesion",), primary_metric="jaccard_mean",
                 reference="U-Net ResNet34 mean Jaccard 0.883; FPN IoU 0.90"),
    ]
}

DATASETS: dict[str, DatasetInfo] = _Registry({
    d.name: d
    for d in [
        DatasetInfo("isic2016_task3", "ISIC 2016 Part 3 (lesion classification)", "skinbench.data.isic2016:load",
                    "isic2016_task3", "https://challenge.isic-archive.com/data/#2016",
                    ("ISBI2016_ISIC_Part3_Training_GroundTruth.csv", "ISBI2016_ISIC_Part3_Test_GroundTruth.csv",
                     "train/ISIC_*.jpg (ISBI2016_ISIC_Part3_Training_Data)",
                     "test/ISIC_*.jpg (ISBI2016_ISIC_Part3_Test_Data)"),
                    class_names=("benign", "malignant"), positive_class="malignant",
                    manifest="isic2016_task3.csv", license="CC-0 (ISIC Archive)"),
        DatasetInfo("ham10000", "HAM10000", "skinbench.data.ham10000:load", "ham10000",
                    "https://doi.org/10.7910/DVN/DBW86T (images, metadata); "
                    "https://challenge.isic-archive.com/data/#2018 (Task 1 masks)",
                    ("HAM10000_metadata.csv",
                     "images/ISIC_*.jpg or HAM10000_images_part_1/ and HAM10000_images_part_2/",
                     "masks/ISIC_*_segmentation.png (or HAM10000_segmentations_lesion_tschandl/)"),
                    class_names=HAM_CLASSES, positive_class=None, targets=("lesion",),
                    manifest="ham10000.csv", license="CC BY-NC 4.0"),
        *(DatasetInfo(name, f"ISIC 2018 Task 2 attribute masks ({split})", f"skinbench.data.attributes:{adapter}",
                      "isic2018_task2", "https://challenge.isic-archive.com/data/#2018",
                      ("images/ISIC_*.jpg", "<attribute>/ISIC_*_attribute_<attribute>.png",
                       "split_membership_2016_2017.csv"),
                      targets=ISIC2018_ATTRIBUTES, manifest=f"{name}.csv", license="CC-0 / CC BY-NC (ISIC Archive)")
          # one release, two training sets over the same 339 test images
          for name, split, adapter in (("isic2018_task2", "2016-style split", "load_isic2018"),
                                       ("isic2018_task2_all", "every non-test image trains", "load_isic2018_all"))),
        DatasetInfo("isic2016_part2b", "ISIC 2016 Part 2B (globules, streaks)",
                    "skinbench.data.attributes:load_isic2016_part2b", "isic2016_part2b",
                    "https://challenge.isic-archive.com/data/#2016",
                    ("train/ISIC_*.jpg with ISIC_*_globules.png, ISIC_*_streaks.png",
                     "test/ISIC_*.jpg with ISIC_*_globules.png, ISIC_*_streaks.png"),
                    targets=("globules", "streaks"), license="CC-0 (ISIC Archive)"),
        DatasetInfo("synthetic", "Synthetic dermoscopy (generated, seeded)", "skinbench.data.synthetic:load",
                    "synthetic", "generated by skinbench (no download)",
                    ("generated on first use",),
                    class_names=("benign", "malignant"), positive_class="malignant",
                    targets=("lesion", "globules", "streaks")),
        DatasetInfo("generic", "Your own data: a folder of images and a CSV", "skinbench.data.generic:load",
                    "generic", "your own files",
                    ("labels.csv with image_id,label[,lesion_id][,split]", "images/<image_id>.jpg|png",
                     "masks/<image_id>_<target>.png (optional)")),
    ]
})

_B = "skinbench.approaches.baselines"
#: seconds-long settings for `skinbench smoke` (tiny inputs, one epoch; weights=None is explicit there).
#: Every epoch-like parameter (``*epochs*``, ``stages``) is overridden, task_params included
#: (tests/test_cli_params.py checks it against each estimator's signature).
_SMOKE_SEG = {"input_size": 32, "epochs": 1, "batch_size": 8}
_SMOKE_FINETUNE = {"finetune_epochs": 0}
_SMOKE_TRANSFER = {"weights": None, "input_size": 32, "n_views": 1, "stages": [["head", 1e-3, 2]]}
#: transfer estimators: features (head on cached features), partial fine-tuning, end to end
_T, _F = "skinbench.approaches.transfer", "skinbench.approaches.finetune"
_FT_TOP = {"backbone": "mobilenet_v2", "stages": [["head", 3e-4, 100], ["top", 1e-4, 30]],
           "patience": 8, "tta": "auto"}
_SMOKE_PARTIAL = {"weights": None, "input_size": 32, "n_views": 1, "stages": [["head", 1e-3, 2], ["top", 1e-3, 1]]}
#: the Y-Net of task4 and ynet-cls of task2 share these, so both rows come from one training
_YNET = {"input_size": 128, "train_encoder": False, "epochs": 10, "batch_size": 32, "learning_rate": 1e-3,
         "patience": 4, "n_classes": 7}
_SMOKE_BOVW = {"n_words": 20, "image_size": 96}
APPROACHES: dict[str, ApproachInfo] = _Registry({
    a.name: a
    for a in [
        # trivial baselines: every table shows them
        ApproachInfo("majority", f"{_B}:DummyPathClassifier", "baseline", ("task1", "task2"),
                     "Majority class, scored with the training prior", params={"strategy": "prior"}),
        ApproachInfo("stratified", f"{_B}:DummyPathClassifier", "baseline", ("task1", "task2"),
                     "Random labels at the training prior (seeded)", params={"strategy": "stratified"}),
        # task3: every ISIC 2018 attribute, so the pooled ISIC 2018 Task 2 score has its baselines too
        ApproachInfo("all-background", f"{_B}:ConstantSegmenter", "baseline", ("task3", "task4"),
                     "All background", params={"value": 0.0}, all_targets=True),
        ApproachInfo("all-foreground", f"{_B}:ConstantSegmenter", "baseline", ("task3", "task4"),
                     "All foreground", params={"value": 1.0}, all_targets=True),
        ApproachInfo("ellipse", f"{_B}:EllipseSegmenter", "baseline", ("task4",), "Centred ellipse"),
        # --- classical (issue 4 adds its variants here) ---
        ApproachInfo("bovw", "skinbench.approaches.bovw:BoVWClassifier", "classical", ("task1", "task2"),
                     "SIFT bag of visual words + RBF SVM (reference recipe, K=300)",
                     smoke_params=_SMOKE_BOVW),
        ApproachInfo("bovw-sift-chi2", "skinbench.approaches.bovw:BoVWClassifier", "classical", ("task1", "task2"),
                     "Denser DoG SIFT (contrast 0.01), RootSIFT, K=300, Hellinger histograms, chi2 SVM",
                     params={"contrast_threshold": 0.01, "rootsift": True, "normalization": "sqrt",
                             "kernel": "chi2"},
                     smoke_params=_SMOKE_BOVW),
        ApproachInfo("bovw-dense", "skinbench.approaches.bovw:BoVWClassifier", "classical", ("task1", "task2"),
                     "Dense RootSIFT (8 px grid), K=300, Hellinger histograms, chi2 SVM",
                     params={"detector": "dense", "rootsift": True, "normalization": "sqrt", "kernel": "chi2"},
                     smoke_params=_SMOKE_BOVW),
        ApproachInfo("bovw-color", "skinbench.approaches.bovw:BoVWClassifier", "classical", ("task1", "task2"),
                     "Dense RootSIFT + opponent-colour patch words, centre/periphery pyramid, chi2 SVM",
                     params={"detector": "dense", "rootsift": True, "normalization": "sqrt", "kernel": "chi2",
                             "color": "opponent", "spatial": True},
                     smoke_params=_SMOKE_BOVW),
        ApproachInfo("bovw-sift-color", "skinbench.approaches.bovw:BoVWClassifier", "classical", ("task1", "task2"),
                     "DoG RootSIFT (contrast 0.01) + opponent-colour patch words, centre/periphery, chi2 SVM",
                     params={"contrast_threshold": 0.01, "rootsift": True, "normalization": "sqrt",
                             "kernel": "chi2", "color": "opponent", "spatial": True},
                     smoke_params=_SMOKE_BOVW),
        ApproachInfo("classical-seg", "skinbench.approaches.classical_seg:ClassicalSegmenter", "classical",
                     ("task4",), "Hair removal + Otsu (channel, threshold tuned on train) + central component"),
        ApproachInfo("classical-dots", "skinbench.approaches.classical_dots:DarkDotSegmenter", "classical",
                     ("task3",), "Black-hat dark-dot response inside the classical lesion mask "
                                 "(disk size and threshold tuned on train, pooled Jaccard)",
                     smoke_params={"n_tune": 10}),
        # --- deep classification (issue 5 adds its variants here) ---
        ApproachInfo("cnn-scratch", "skinbench.approaches.scratch_cnn:ScratchCNNClassifier", "deep", ("task1",),
                     "Small CNN trained from scratch, no pretrained weights (4 conv blocks, 128 px, flips, "
                     "early stopping on a validation split)",
                     smoke_params={"input_size": 32, "epochs": 1, "batch_size": 8}),
        ApproachInfo("transfer-vgg16", f"{_T}:FeatureTransferClassifier", "deep",
                     ("task1", "task2"), "VGG16 ImageNet transfer, Flatten head on cached features (reference recipe)",
                     params={"backbone": "vgg16", "pooling": "flatten"},
                     needs="VGG16 ImageNet weights (vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5)",
                     smoke_params=_SMOKE_TRANSFER),
        ApproachInfo("transfer-mobilenetv2", f"{_T}:FeatureTransferClassifier", "deep",
                     ("task1", "task2"), "MobileNetV2 ImageNet transfer (keras head on cached features, 4 views)",
                     params={"backbone": "mobilenet_v2"},
                     smoke_params=_SMOKE_TRANSFER),
        ApproachInfo("transfer-mobilenetv2-logreg", f"{_T}:FeatureTransferClassifier", "deep",
                     ("task1", "task2"), "MobileNetV2 ImageNet features (4 views) + balanced logistic regression",
                     params={"backbone": "mobilenet_v2", "head_solver": "logreg", "C": 0.01},
                     smoke_params=_SMOKE_TRANSFER,
                     # a convex head on the TensorFlow features: measured within 2e-4 between an AMD EPYC
                     # and an Intel Xeon (commit e7a83de), where the MLP head on them moved 0.039
                     reproducibility=("bitwise-same-cpu", 1e-3)),
        ApproachInfo("transfer-mobilenetv2-ft-top", f"{_F}:PartialFinetuneClassifier", "deep",
                     ("task1", "task2"), "MobileNetV2 fine-tuned on 2 cores: head, then blocks 13-16 on cached "
                                         "block_12 activations (4 views, 224 px), flips TTA if validation gains",
                     params=_FT_TOP, smoke_params=_SMOKE_PARTIAL),
        ApproachInfo("transfer-mobilenetv2-ft-all", f"{_F}:PartialFinetuneClassifier", "deep",
                     ("task1", "task2"), "MobileNetV2 as ft-top, then the whole network end to end at 160 px",
                     params={**_FT_TOP, "stages": _FT_TOP["stages"] + [["all", 1e-5, 8]], "finetune_size": 160},
                     task_params={"task2": {"stages": _FT_TOP["stages"] + [["all", 1e-5, 3]]}},
                     smoke_params={**_SMOKE_PARTIAL, "stages": _SMOKE_PARTIAL["stages"] + [["all", 1e-4, 1]],
                                   "finetune_size": 32}),
        ApproachInfo("transfer-vgg16-ft-top", f"{_F}:PartialFinetuneClassifier", "deep",
                     ("task1", "task2"), "VGG16 fine-tuned: head, then block5 on cached block4 activations",
                     params={**_FT_TOP, "backbone": "vgg16"},
                     needs="VGG16 ImageNet weights (vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5)",
                     smoke_params={**_SMOKE_PARTIAL, "backbone": "vgg16"}),
        ApproachInfo("transfer-vgg16-ft-all", f"{_F}:PartialFinetuneClassifier", "deep",
                     ("task1", "task2"), "VGG16 as vgg16-ft-top, then the whole network end to end at 224 px",
                     params={**_FT_TOP, "backbone": "vgg16", "stages": _FT_TOP["stages"] + [["all", 1e-5, 3]]},
                     needs="VGG16 ImageNet weights (vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5)",
                     smoke_params={**_SMOKE_PARTIAL, "backbone": "vgg16",
                                   "stages": _SMOKE_PARTIAL["stages"] + [["all", 1e-4, 1]]}),
        ApproachInfo("transfer-mobilenetv2-finetune", f"{_T}:EndToEndTransferClassifier", "deep",
                     ("task1", "task2"), "MobileNetV2 fine-tuned end to end: head -> last block -> all (task1 at "
                                         "224 px; task2 at 160 px, near HAM10000's 200x150, so its 8011 images "
                                         "train on 2 CPU cores; tf.data; mixed precision and all GPUs when present)",
                     params={"backbone": "mobilenet_v2"}, task_params={"task2": {"input_size": 160}},
                     smoke_params={"weights": None, "input_size": 32, "stages": [["head", 1e-3, 1]]}),
        # --- deep segmentation (issue 6 adds its variants here) ---
        ApproachInfo("unet", "skinbench.approaches.unet:UNetSegmenter", "deep", ("task3", "task4"),
                     "Keras U-Net from scratch (width, depth, dropout configurable; CPU default base 16, depth 4, "
                     "BCE+Dice; lesions: 96 px, 10 epochs on 2 cores; globules/streaks: 128 px, positive images "
                     "oversampled, flip TTA if it helps on validation)",
                     task_params={"task3": {"epochs": 20, "patience": 5, "positive_fraction": 0.5, "tta": "auto"},
                                  "task4": {"input_size": 96, "epochs": 10, "batch_size": 32, "patience": 4}},
                     smoke_params=_SMOKE_SEG),
        ApproachInfo("mobilenet-unet", "skinbench.approaches.ynet:MobileNetUNetSegmenter", "deep", ("task3", "task4"),
                     "U-Net with a MobileNetV2 ImageNet encoder, decoder trained on the frozen encoder, then "
                     "the encoder fine-tuned (lesions: 128 px, 8 + 4 epochs on 2 cores; globules/streaks: "
                     "192 px, 6 + 6 epochs, positive images oversampled to half of each epoch, flip TTA if it "
                     "helps on validation)",
                     params={"input_size": 128, "train_encoder": True, "epochs": 25, "batch_size": 32,
                             "learning_rate": 5e-4, "patience": 5},
                     task_params={"task3": {"input_size": 192, "train_encoder": False, "epochs": 6,
                                            "batch_size": 16, "learning_rate": 1e-3, "patience": 3,
                                            "validation_fraction": 0.15, "positive_fraction": 0.5,
                                            "finetune_epochs": 6, "finetune_learning_rate": 1e-4, "tta": "auto"},
                                 "task4": {"train_encoder": False, "epochs": 8, "learning_rate": 1e-3, "patience": 4,
                                           "finetune_epochs": 4, "finetune_learning_rate": 1e-4}},
                     smoke_params={**_SMOKE_SEG, **_SMOKE_FINETUNE, "weights": None}),
        ApproachInfo("mobilenet-unet-5attr", "skinbench.approaches.ynet:MultiOutputUNetSegmenter", "deep", ("task3",),
                     "One MobileNetV2 U-Net, five sigmoid maps (every ISIC 2018 attribute), per-attribute BCE+Dice "
                     "averaged, images of each rare attribute oversampled to a quarter of every epoch; decoder on "
                     "the frozen encoder (6 epochs), then the encoder fine-tuned (9; 192 px); flip TTA if it helps",
                     params={"input_size": 192, "train_encoder": False, "epochs": 6, "batch_size": 16,
                             "learning_rate": 1e-3, "patience": 4, "validation_fraction": 0.15,
                             "positive_fraction": 0.25, "finetune_epochs": 9, "finetune_learning_rate": 1e-4,
                             "tta": "auto"},
                     all_targets=True, multi_target=True,
                     smoke_params={**_SMOKE_SEG, **_SMOKE_FINETUNE, "weights": None}),
        ApproachInfo("ynet", "skinbench.approaches.ynet:YNetSegmenter", "deep", ("task4",),
                     "Y-Net: frozen MobileNetV2 U-Net + 7-class head, trained jointly (128 px, 10 epochs on 2 cores)",
                     params=_YNET, smoke_params={**_SMOKE_SEG, **_SMOKE_FINETUNE, "weights": None, "n_classes": 0}),
        ApproachInfo("ynet-cls", "skinbench.approaches.ynet:YNetClassifier", "deep", ("task2",),
                     "Y-Net's classification head: the very Y-Net task4 trains (same data, parameters and "
                     "checkpoint), scored on diagnosis",
                     params=_YNET, needs="HAM10000 lesion masks beside the images (masks/)", needs_masks="lesion",
                     smoke_params={**_SMOKE_SEG, "weights": None, "n_classes": 0}),
        ApproachInfo("fpn", "skinbench.approaches.fpn:FPNSegmenter", "deep", ("task4",),
                     "FPN: frozen MobileNetV2 encoder, 1x1 laterals, top-down pyramid, per-level heads summed "
                     "(128 px, 10 epochs on 2 cores)",
                     params={"input_size": 128, "train_encoder": False, "epochs": 10, "batch_size": 32,
                             "learning_rate": 1e-3, "patience": 4},
                     smoke_params={**_SMOKE_SEG, **_SMOKE_FINETUNE, "weights": None}),
    ]
})


def _lookup(table: dict[str, Any], name: str, what: str, candidates: list[str] | None = None,
            where: str = "") -> Any:
    """``table[name]``, or a ConfigError listing ``candidates`` (default: every name in ``table``) with the
    closest one as a did-you-mean: a typo's fix is the name it missed, not a list of every task's names."""
    if name in table and (candidates is None or name in candidates):
        return table[name]
    known = sorted(table) if candidates is None else list(candidates)
    ratio = {k: difflib.SequenceMatcher(None, name, k).ratio() for k in known}
    best = sorted(known, key=ratio.__getitem__, reverse=True)[:2]
    unique = best and ratio[best[0]] >= 0.6 and (len(best) == 1 or ratio[best[0]] > ratio[best[1]])
    hint = f"did you mean {best[0]}? " if unique else ""  # a tie (task7: task1 or task4?) is no hint
    raise ConfigError(f"unknown {what} {name!r}{where}",
                      fix=f"{hint}use one of: {', '.join(known)} (see `python -m skinbench list`)")


def task(name: str) -> TaskInfo:
    return _lookup(TASKS, name, "task")


def dataset(name: str) -> DatasetInfo:
    return _lookup(DATASETS, name, "dataset")


def approach(name: str, task_name: str | None = None) -> ApproachInfo:
    """The registered approach ``name``; with ``task_name``, an unknown name is reported with that task's
    approaches only (a registered approach of another task is still returned: the caller says so)."""
    if task_name is None or name in APPROACHES:
        return _lookup(APPROACHES, name, "approach")
    return _lookup(APPROACHES, name, "approach", approaches_for(task_name), f" for {task_name}")


def segmentation_targets(task_name: str, approach_name: str, dataset_name: str | None = None) -> tuple[str, ...]:
    """The targets a run scores: the task's, then (for an ``all_targets`` approach) its ``more_targets`` that
    the dataset has masks for (a registered dataset's declared targets; any other dataset: none)."""
    t = task(task_name)
    if not approach(approach_name).all_targets:
        return t.targets
    held = DATASETS[dataset_name].targets if dataset_name in DATASETS else ()
    return t.targets + tuple(x for x in t.more_targets if x in held)


def baselines_for(task_name: str) -> list[str]:
    return [a.name for a in APPROACHES.values() if a.family == "baseline" and task_name in a.tasks]


def approaches_for(task_name: str, suite_only: bool = False) -> list[str]:
    """Approaches doing ``task_name``, registry order (plugins last); ``suite_only``: skinbench's own."""
    return [a.name for a in APPROACHES.values() if task_name in a.tasks and not (suite_only and a.contributed)]
