#!/usr/bin/env python3
"""Writes small Hugging Face tokenizers and what the `tokenizers` library makes of a test corpus.

Each tokenizer is trained here by the `tokenizers` library on the small corpus below
(TRAINING), shaped like the tokenizer.json of a family of small open models, and saved as
Tests/Fixtures/tokenizers/<name>/tokenizer.json:

    gpt2         byte-level BPE, pre-tokenizer ByteLevel (GPT-2's pattern inside), merges
                 written in the legacy "a b" form, <|endoftext|>
    gpt2-split   the same model behind Sequence[Split(GPT-2's pattern), ByteLevel with a
                 prefix space and no pattern of its own]
    llama3       byte-level BPE behind Llama 3's pattern, ignore_merges (with whole words in
                 the vocabulary that no merge reaches), special tokens both inside the model
                 vocabulary and past it, a BOS template
    qwen2        byte-level BPE behind Qwen2's pattern (single digits), NFC, added tokens with
                 lstrip, rstrip, single_word and normalized
    llama2       SentencePiece-style BPE with byte fallback: Prepend("▁") + Replace(" ", "▁"),
                 <unk> <s> </s>, the 256 <0xXX> tokens, the Llama 2 decoder, a BOS template
    metaspace    the same vocabulary without byte fallback (fused <unk>), behind the older
                 Metaspace pre-tokenizer (add_prefix_space, prepend_scheme "first") and
                 decoder

Beside each, expected.json holds, for every text of the test corpus (TEXTS): the ids without
and with special tokens; the decoding of the latter with and without skipping special tokens,
and without its last id (cut inside a character's bytes); and the decoded text of each id
alone. It also holds the token of every id, with the id the library finds for that token.
Tests/Fixtures/tokenizers/components.json holds what single normalizers and pre-tokenizers
(each given as its JSON) make of the test corpus and a few more texts.

Every file is loaded back with `Tokenizer.from_file` before the expectations are computed,
so they describe the files exactly as written. The tests never run Python.
"""

import argparse
import json
import os

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

SCRIPT = "scripts/reference/make_tokenizer_fixture.py"

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

# The training corpus: prose, code, numbers, a little French, German, Chinese and Japanese.
# Emoji, Korean and most rarer characters are left out on purpose, so the test corpus meets
# characters no merge knows (and, for the SentencePiece-style models, no vocabulary entry).
TRAINING = [
    "The quick brown fox jumps over the lazy dog. The dog doesn't mind; it's been there before.",
    "Reinforcement learning fine-tunes a language model with rewards computed on its own samples.",
    "The rollout engine samples tokens with a KV cache, and the training engine recomputes them.",
    "When the two engines round differently, their log-probabilities part, and the policy drifts.",
    "We'll measure the mismatch token by token: the ratio, its logarithm, and the KL divergence.",
    "I'm sure you're right that they've seen it; we'd rather check than guess. They'll agree.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 256 1024 4096 65536 3.14159 2.71828 1,000,000.",
    "In 2023 and 2024 the models grew from 125M to 7B and 70B parameters, trained on 15T tokens.",
    "def forward(self, x):\n    h = self.norm(x)\n    return x + self.attention(h)\n",
    "for i in range(10):\n\tprint(i, i * i)\n\n# a comment\nx = [1, 2, 3]\n",
    "if (a < b && c >= d) { return a->next; } else { return NULL; }\n",
    "{\"name\": \"value\", \"list\": [true, false, null], \"n\": -12.5e3}\n",
    "Le café était délicieux, et la crème brûlée aussi. Où est la bibliothèque ? À demain !",
    "Über den Wolken muss die Freiheit wohl grenzenlos sein. Grüße aus München, schöne Straße.",
    "El niño comió paella en la playa; mañana irá a Sevilla con su señora.",
    "机器学习模型在训练和推理时使用不同的数值精度。中文文本也需要分词。",
    "日本語のテキストも少し含めます。東京は大きな都市です。",
    "Hello, world! Hello again, world. HELLO WORLD. hello world...",
    "Tabs\tseparate\tcolumns, and  double  spaces   and   triple   spaces appear in text.",
    "Line one\nLine two\r\nLine three\n\nA new paragraph starts after a blank line.\n",
    "A sentence with punctuation: commas, semicolons; colons: dashes - and -- and quotes \"like this\".",
    "Question? Answer! Ellipsis... Parentheses (like these) and brackets [like those].",
    "email@example.com https://example.org/path?query=1&x=2 #hashtag @mention $100 50% 3/4",
    "Supervised fine-tuning, then RLHF, then GRPO: each step changes the distribution of outputs.",
    "Mixed precision uses bfloat16 or float16 for products and float32 for accumulation.",
    "FP8 formats E4M3 and E5M2 trade range for precision; scaling keeps values representable.",
    "The learning rate was 1e-6, the batch size 256, the sequence length 4096, the seed 1234.",
    "She said: \"It's not the model, it's the tokenizer!\" He said: \"I'd check both.\"",
    "Can't, won't, shouldn't, couldn't, wouldn't, isn't, aren't, wasn't, weren't, hasn't.",
    "  Indented text with leading spaces and trailing spaces  ",
]

# The test corpus: accents (precomposed and combining), CJK, emoji (with skin-tone modifiers
# and zero-width-joiner sequences), runs of spaces, tabs and newlines, long digit runs,
# contractions in mixed case, special tokens inline, unusual spaces, and the empty string.
TEXTS = [
    "",
    "Hello world",
    "Hello, world! How are you?",
    " leading space",
    "   three leading spaces and trailing ones   ",
    "tabs\there\t\tand\t\t\tthere\t",
    "line one\nline two\r\nline three\n\n\nend\n",
    "\n",
    " \n ",
    "    ",
    "Café déjà vu: naïve façade, Über straße, Ångström, señor.",
    "Cafe\u0301 with a combining acute, u\u0308ber, a\u0308\u0301 stacked marks, \u0301 alone",
    "日本語のテキストと中文字符，还有한국어 텍스트。",
    "Emoji: 👍 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇫🇷 😀😃😄",
    "Digits 1234567890123 and 3.14159 and 1,000,000 and 007; Arabic-Indic ٣٤٥, fractions ½ ¾, Roman Ⅻ",
    "I'm, you're, he's, we've, they'll, I'd, don't; I'M, YOU'RE, He'S, We'Ve, THEY'LL, I'D, DON'T",
    "'s 't 're 've 'm 'll 'd 'S 'T 'RE 'x ''s it’s 'ſ",
    "it'ſx IT'Sx It'Llama WE'VEn she'D you'rE o'clock rock'n'roll 'ſo",
    "<|begin_of_text|>Hello<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|><|eot_id|>",
    "<s>Hello</s> world <unk> <s> spaced </s>",
    "Text<|endoftext|>More text <|endoftext|> and <|end_of_text|>",
    "Mask me <mask> here and   <mask>   there, and<mask>glued.",
    "[WORD] alone, a[WORD]b glued, ([WORD]) in parentheses.",
    "before <sep>    after <sep>\n\nnext",
    "café and cafe\u0301 as added tokens: mycafé",
    "Non-breaking\u00a0space, ideographic\u3000space, line\u2028separator, nul\u0000char, bell\u0007.",
    "    indented code:\n        return x  # comment\n\tif y:\n\t\tpass\n",
    "def f(x):\n    return {'a': [1, 2, 3], \"b\": None}  # trailing   \n",
    "The rollout engine and the training engine compute the same policy, but they round differently.",
    "x" * 40 + " " + "ab" * 30 + " " + "9" * 25,
    "Mixed: abc123def 12ab 1a2b3c αβγ ΑΒΓ ʼn ǅ Ⓐ",
]

COMPONENT_TEXTS = TEXTS + [
    "a-b--c---d",
    "▁already▁has▁metaspaces and spaces",
    "x\r\n\r\ny \r\n z\n\t\n",
]


def train_byte_level(pre_tokenizer, special_tokens, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TRAINING, trainer)
    return tok


def as_json(tok):
    return json.loads(tok.to_str())


def split_then_bytes(pattern, add_prefix_space=False):
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space, use_regex=False),
    ])


def gpt2_family():
    tok = train_byte_level(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), ["<|endoftext|>"], 900)
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    plain = as_json(tok)
    # The legacy serialization of merges: one "a b" string each (byte-level tokens hold no space).
    legacy = json.loads(json.dumps(plain))
    legacy["model"]["merges"] = [" ".join(pair) for pair in plain["model"]["merges"]]
    split = json.loads(json.dumps(plain))
    tok.pre_tokenizer = split_then_bytes(GPT2_PATTERN, add_prefix_space=True)
    split["pre_tokenizer"] = as_json(tok)["pre_tokenizer"]
    return {"gpt2": legacy, "gpt2-split": split}


def llama3():
    trained = train_byte_level(split_then_bytes(LLAMA3_PATTERN), ["<|begin_of_text|>", "<|end_of_text|>"], 1000)
    # With ignore_merges, a word that is a token is that token even where no merges lead to
    # it: a few whole words go into the vocabulary without merges.
    config = as_json(trained)
    config["model"]["ignore_merges"] = True
    vocab = config["model"]["vocab"]
    for word in ("Ġdifferently", "Ġpolicy", "Ġindented"):
        if word not in vocab:
            vocab[word] = len(vocab)
    tok = Tokenizer.from_str(json.dumps(config))
    # Special tokens past the model vocabulary, as Llama 3's reserved ones are.
    tok.add_special_tokens(["<|im_start|>", "<|im_end|>", "<|eot_id|>"])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)]),
    ])
    return {"llama3": as_json(tok)}


def qwen2():
    tok = train_byte_level(split_then_bytes(QWEN2_PATTERN), ["<|endoftext|>"], 800)
    tok.normalizer = normalizers.NFC()
    tok.add_special_tokens(["<|im_start|>", "<|im_end|>", AddedToken("<mask>", lstrip=True, special=True, normalized=False)])
    tok.add_tokens([
        AddedToken("[WORD]", single_word=True, special=False, normalized=False),
        AddedToken("<sep>", rstrip=True, special=False, normalized=False),
        # Written decomposed; matched, and decoded, as its NFC form.
        AddedToken("cafe\u0301", special=False, normalized=True),
    ])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return {"qwen2": as_json(tok)}


def sentencepiece_family():
    # Train on words marked with ▁ as SentencePiece does, then build the model's vocabulary
    # as Llama 2's is laid out: <unk> <s> </s>, the 256 byte tokens, then the trained pieces.
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    trainer = trainers.BpeTrainer(vocab_size=700, show_progress=False)
    trainer_tok.train_from_iterator(TRAINING, trainer)
    trained = as_json(trainer_tok)["model"]
    ordered = sorted(trained["vocab"].items(), key=lambda kv: kv[1])
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in ordered:
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(m) for m in trained["merges"]]
    specials = [AddedToken(t, special=True, normalized=False) for t in ("<unk>", "<s>", "</s>")]

    llama2 = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    llama2.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    llama2.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    llama2.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    llama2.add_special_tokens(specials)

    meta = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=False))
    meta.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    meta.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    meta.add_special_tokens(specials)
    metaspace = as_json(meta)
    # The older spelling, as files written before prepend_scheme carry it.
    for part in ("pre_tokenizer", "decoder"):
        metaspace[part] = {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True, "prepend_scheme": "first"}
    return {"llama2": as_json(llama2), "metaspace": metaspace}


def expectations(tok):
    cases = []
    for text in TEXTS:
        plain = tok.encode(text, add_special_tokens=False).ids
        special = tok.encode(text, add_special_tokens=True).ids
        cases.append({
            "text": text,
            "ids": plain,
            "ids_with_special_tokens": special,
            "decoded": tok.decode(special, skip_special_tokens=False),
            "decoded_skipping_special_tokens": tok.decode(special, skip_special_tokens=True),
            # Cut after part of a character's bytes, for the replacement of ill-formed UTF-8.
            "decoded_without_last_token": tok.decode(special[:-1], skip_special_tokens=False),
            "pieces": [tok.decode([i], skip_special_tokens=False) for i in special],
        })
    size = tok.get_vocab_size(with_added_tokens=True)
    tokens = [tok.id_to_token(i) for i in range(size)]
    return {
        "tokenizers_version": tokenizers.__version__,
        "script": SCRIPT,
        "vocab_size": size,
        "tokens": tokens,
        "ids_of_tokens": [tok.token_to_id(t) for t in tokens],
        "cases": cases,
    }


def component_cases():
    def pre_json(pt):
        t = Tokenizer(models.BPE())
        t.pre_tokenizer = pt
        return as_json(t)["pre_tokenizer"]

    def norm_json(n):
        t = Tokenizer(models.BPE())
        t.normalizer = n
        return as_json(t)["normalizer"]

    behaviors = ["removed", "isolated", "merged_with_previous", "merged_with_next", "contiguous"]
    pres = []
    for pattern in (GPT2_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN):
        pres.append(pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False))
    for behavior in behaviors:
        for invert in (False, True):
            pres.append(pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior=behavior, invert=invert))
            pres.append(pre_tokenizers.Split("-", behavior=behavior, invert=invert))
    pres += [
        pre_tokenizers.Split(" ", behavior="removed", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Digits(individual_digits=False),
        pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]),
    ]
    for scheme in ("always", "first", "never"):
        for split in (True, False):
            pres.append(pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=split))
    norms = [
        normalizers.NFC(),
        normalizers.NFD(),
        normalizers.NFKC(),
        normalizers.NFKD(),
        normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]),
        normalizers.Replace("  ", "_"),
        normalizers.Sequence([]),
    ]
    return {
        "tokenizers_version": tokenizers.__version__,
        "script": SCRIPT,
        "texts": COMPONENT_TEXTS,
        "pre_tokenizers": [
            {"pre_tokenizer": pre_json(pt), "pieces": [[p for p, _ in pt.pre_tokenize_str(t)] for t in COMPONENT_TEXTS]}
            for pt in pres
        ],
        "normalizers": [
            {"normalizer": norm_json(n), "normalized": [n.normalize_str(t) for t in COMPONENT_TEXTS]}
            for n in norms
        ],
    }


def write_json(path, value, indent=None):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=indent)
        f.write("\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="Tests/Fixtures", help="the fixtures directory (tokenizers/ is written inside)")
    args = parser.parse_args()
    root = os.path.join(args.out, "tokenizers")

    configs = {}
    for family in (gpt2_family, llama3, qwen2, sentencepiece_family):
        configs.update(family())
    for name, config in configs.items():
        directory = os.path.join(root, name)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "tokenizer.json")
        write_json(path, config, indent=1)
        tok = Tokenizer.from_file(path)
        write_json(os.path.join(directory, "expected.json"), expectations(tok))
        print(f"{path}: {tok.get_vocab_size(with_added_tokens=True)} tokens")
    write_json(os.path.join(root, "components.json"), component_cases())


if __name__ == "__main__":
    main()
