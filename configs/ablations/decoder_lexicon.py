_base_ = ["../crnn_vgg_bilstm_ctc.py"]
# Decoder: words of a dictionary within edit distance 3 (paper section 2.3.3) -- what a lexicon adds.
model = dict(decoder=dict(_delete_=True, type="LexiconDecoder", lexicon="/usr/share/dict/words", delta=3))
