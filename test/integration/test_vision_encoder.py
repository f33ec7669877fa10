# Copyright 2026 The ros2_nano_llm Authors
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""
Image embeddings on tiny random-weight LLaVA 1.5 and LLaVA-NeXT models.

The rows ``HFImageEncoder.embed`` returns, spliced between the text embeddings, must give
the same logits as the model's own forward on the processor-expanded ``input_ids`` plus
``pixel_values``; every input form of one image must give the same embedding; and a chat
with an image must stay exact through the KV cache (greedy output equal to a recompute).
"""

import io

from chat_helpers import assert_cache_exact, recompute, reply
import numpy as np
from PIL import Image
import pytest
from ros2_nano_llm import ChatHistory, NanoLLM
from ros2_nano_llm.vision.encoders import HFImageEncoder, load_vision
from support.tiny_vision import build_tiny_llava, build_tiny_llava_next
import torch

BUILDERS = {'llava': build_tiny_llava, 'llava_next': build_tiny_llava_next}
PROMPT = 'USER: Look at this.\n<image>\nWhat is in the picture? ASSISTANT:'


@pytest.fixture(scope='module')
def tokenizer():
    """Return the SmolLM2 tokenizer once for both builders."""
    from support.tiny import load_smollm2_tokenizer
    return load_smollm2_tokenizer()


@pytest.fixture(scope='module')
def vlm_dirs(tmp_path_factory, tokenizer):
    """Return {kind: directory} of the saved tiny models (built once per module)."""
    return {kind: build(str(tmp_path_factory.mktemp(f'tiny-{kind}')), tokenizer)
            for kind, build in BUILDERS.items()}


@pytest.fixture(scope='module')
def loaded(vlm_dirs):
    """Return {kind: (model, processor, encoder)} loaded the way HFBackend loads them."""
    from transformers import AutoModelForImageTextToText, AutoProcessor
    out = {}
    for kind, path in vlm_dirs.items():
        model = AutoModelForImageTextToText.from_pretrained(path).eval()
        processor = AutoProcessor.from_pretrained(path)
        out[kind] = (model, processor, load_vision(model, path))
    return out


def picture(height, width, seed=0):
    """Return a random (H, W, 3) uint8 RGB image."""
    return np.random.RandomState(seed).randint(0, 256, (height, width, 3), dtype=np.uint8)


def reference_logits(model, processor, rgb, prompt=PROMPT):
    """Return (logits, input_ids) of the model's own forward with the expanded image tokens."""
    batch = processor(text=prompt, images=Image.fromarray(rgb), return_tensors='pt')
    with torch.inference_mode():
        return model(**batch).logits[0], batch['input_ids'][0]


def spliced_logits(model, ids, image_token_id, rows):
    """Return logits of ``inputs_embeds`` = text before + ``rows`` + text after the image."""
    where = (ids == image_token_id).nonzero()[:, 0]
    start, end = int(where[0]), int(where[-1]) + 1
    assert end - start == len(where), 'the image tokens must be one run'
    embed = model.get_input_embeddings()
    with torch.inference_mode():
        x = torch.cat([embed(ids[:start]), rows, embed(ids[end:])])  # (T, D)
        return model(inputs_embeds=x[None]).logits[0]


@pytest.mark.parametrize('kind, size', [
    ('llava', (40, 60)), ('llava', (32, 32)),
    ('llava_next', (40, 60)), ('llava_next', (90, 30)), ('llava_next', (32, 32)),
    ('llava_next', (64, 64)),
])
def test_embed_matches_model_forward(loaded, kind, size):
    model, processor, encoder = loaded[kind]
    rgb = picture(*size)
    ref, ids = reference_logits(model, processor, rgb)
    rows = encoder.embed(rgb)
    n_image = int((ids == model.config.image_token_id).sum())
    assert rows.shape == (n_image, model.config.text_config.hidden_size)
    assert encoder.image_token_count(rgb) == n_image
    torch.testing.assert_close(spliced_logits(model, ids, encoder.image_token_id, rows), ref,
                               atol=1e-5, rtol=0)


def test_llava_next_token_count_follows_aspect(loaded):
    _, _, encoder = loaded['llava_next']
    counts = {size: encoder.image_token_count(picture(*size)) for size in
              [(32, 32), (40, 60), (90, 30), (64, 64)]}
    assert len(set(counts.values())) > 1, counts  # any-resolution tiling, not a fixed count
    assert counts[(32, 32)] == 16 + 16 + 4  # overview + one tile (4x4) + 4 newline rows


def test_llava_token_count_is_fixed(loaded):
    _, _, encoder = loaded['llava']
    assert encoder.image_token_count(picture(40, 60)) == 16
    assert encoder.image_token_count(picture(100, 20)) == 16


def test_kv_cache_split_at_the_image_is_exact(loaded):
    """Prefill text + image in one call and the question in another: same as one forward."""
    from transformers import DynamicCache
    model, processor, encoder = loaded['llava_next']
    rgb = picture(40, 60)
    ref, ids = reference_logits(model, processor, rgb)
    where = (ids == encoder.image_token_id).nonzero()[:, 0]
    end = int(where[-1]) + 1
    embed = model.get_input_embeddings()
    first = torch.cat([embed(ids[:int(where[0])]), encoder.embed(rgb)])  # (t1, D)
    cache = DynamicCache(config=model.config.get_text_config())
    with torch.inference_mode():
        out1 = model(inputs_embeds=first[None], past_key_values=cache, use_cache=True,
                     cache_position=torch.arange(end))
        out2 = model(input_ids=ids[None, end:], past_key_values=cache, use_cache=True,
                     cache_position=torch.arange(end, len(ids)))
    torch.testing.assert_close(out1.logits[0], ref[:end], atol=1e-5, rtol=0)
    torch.testing.assert_close(out2.logits[0], ref[end:], atol=1e-5, rtol=0)


def test_every_input_form_gives_the_same_embedding(loaded, tmp_path):
    sensor_msgs = pytest.importorskip('sensor_msgs.msg')
    from ros2_nano_llm.vision.convert import to_rgb_array
    _, _, encoder = loaded['llava_next']
    rgb = picture(24, 40, seed=3)
    png = io.BytesIO()
    Image.fromarray(rgb).save(png, format='PNG')
    (tmp_path / 'pic.png').write_bytes(png.getvalue())
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    raw = sensor_msgs.Image(height=24, width=40, encoding='bgr8', step=40 * 3 + 8)
    raw.data = np.concatenate([bgr.reshape(24, -1), np.zeros((24, 8), np.uint8)], 1).tobytes()
    packed = sensor_msgs.CompressedImage(format='png')
    packed.data = png.getvalue()
    forms = {
        'numpy': rgb, 'bgr numpy': (bgr, 'bgr'),
        'torch chw': torch.from_numpy(rgb).permute(2, 0, 1),
        'torch float': torch.from_numpy(rgb).permute(2, 0, 1).float() / 255,
        'PIL': Image.fromarray(rgb), 'path': str(tmp_path / 'pic.png'),
        'ros Image': raw, 'ros CompressedImage': packed,
    }
    ref_pixels = encoder.preprocess(rgb)
    ref_rows = encoder.embed(rgb)
    for name, form in forms.items():
        image, channels = form if isinstance(form, tuple) else (form, 'rgb')
        arr = to_rgb_array(image, channels=channels)
        pixels = encoder.preprocess(arr)
        assert pixels.keys() == ref_pixels.keys(), name
        for key in pixels:
            assert torch.equal(pixels[key], ref_pixels[key]), (name, key)
        assert torch.equal(encoder.embed(arr), ref_rows), name
    assert torch.equal(encoder.embed(Image.fromarray(rgb)), ref_rows)  # embed() converts too


def test_embedding_follows_model_dtype(vlm_dirs):
    from transformers import AutoModelForImageTextToText
    model = AutoModelForImageTextToText.from_pretrained(vlm_dirs['llava'],
                                                        dtype=torch.bfloat16).eval()
    rows = load_vision(model, vlm_dirs['llava']).embed(picture(40, 60))
    assert rows.dtype == torch.bfloat16 and rows.shape == (16, 32)


def test_text_only_model_has_no_vision(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32,
                         num_hidden_layers=1, num_attention_heads=2)
    assert load_vision(LlamaForCausalLM(config), '/nonexistent') is None


def test_bad_image_is_a_value_error(loaded, tmp_path):
    _, _, encoder = loaded['llava']
    assert isinstance(encoder, HFImageEncoder)
    with pytest.raises(ValueError, match='not found'):
        encoder.embed(str(tmp_path / 'missing.png'))


def test_missing_processor_is_a_clear_error(loaded, tmp_path):
    model, _, _ = loaded['llava']
    with pytest.raises(RuntimeError, match='cannot load the image processor'):
        load_vision(model, str(tmp_path))
    with pytest.raises(RuntimeError, match='has no image processor'):
        load_vision(model, 'tokenizer-only', processor=loaded['llava'][1].tokenizer)


# ---------------------------------------------------------------- the chat engine


@pytest.fixture(scope='module')
def vlm(vlm_dirs):
    """Return the tiny LLaVA-NeXT loaded through NanoLLM."""
    model = NanoLLM.from_pretrained(vlm_dirs['llava_next'])
    yield model
    model.close()


def test_nanollm_loads_a_vision_model(vlm):
    assert vlm.has_vision and vlm.config.has_vision
    rows = vlm.embed_image(picture(40, 60))
    assert rows.ndim == 2 and rows.shape[1] == 32


def test_chat_prompt_matches_model_forward(vlm, loaded):
    """The chat engine's image turn gives the logits of the model's own expanded forward."""
    model, processor, encoder = loaded['llava_next']
    rgb = picture(40, 60)
    history = ChatHistory(vlm)
    history.append('user', image=rgb)
    history.append('user', 'What is in the picture?')
    inputs, position = history.embed_chat()
    assert position == 0 and not inputs.is_text
    image = [seg for seg in inputs.segments if isinstance(seg, torch.Tensor)]
    assert len(image) == 1
    before = []
    for seg in inputs.segments:
        if isinstance(seg, torch.Tensor):
            break
        before += seg
    n = int(image[0].shape[0])
    ids = before + [encoder.image_token_id] * n + inputs.tokens[len(before):]
    pixels = processor.image_processor(images=[Image.fromarray(rgb)], return_tensors='pt')
    with torch.inference_mode():
        ref = model(input_ids=torch.tensor([ids]), **pixels).logits[0, -1]
    logits = vlm.backend.prefill(inputs, vlm.backend.new_cache(), 0)
    torch.testing.assert_close(torch.as_tensor(logits), ref, atol=1e-5, rtol=0)


def test_image_chat_is_exact_across_turns(vlm):
    """Greedy replies with the KV cache equal a recompute, before and after dropping the image."""
    history = ChatHistory(vlm)
    image = history.append('user', image=picture(40, 60, seed=5))
    history.append('user', 'What is in the picture?')
    expected = recompute(vlm, history)
    assert reply(vlm, history) == expected
    assert image.embedding is not None
    first_rows = image.embedding

    history.append('user', 'And what colour is it?')
    expected = recompute(vlm, history)
    cached_before = history.cached_tokens()
    assert reply(vlm, history) == expected
    assert image.embedding is first_rows  # encoded once per message, not per turn
    assert cached_before > first_rows.shape[0]  # turn 2 reused the cached image turn
    assert_cache_exact(vlm, history)

    del history[history.messages.index(image)]  # drop the image: the cache is cut there
    history.append('user', 'Describe it again.')
    expected = recompute(vlm, history)
    assert reply(vlm, history) == expected
    assert_cache_exact(vlm, history)


def test_different_images_change_the_answer_logits(vlm):
    logits = []
    for seed in (1, 2):
        history = ChatHistory(vlm)
        history.append('user', image=picture(40, 60, seed=seed))
        history.append('user', 'What is in the picture?')
        inputs, _ = history.embed_chat()
        logits.append(vlm.backend.prefill(inputs, vlm.backend.new_cache(), 0))
    assert not np.allclose(logits[0], logits[1], atol=1e-4)
