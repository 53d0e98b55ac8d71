// Lens prompt tokens of checkpoints whose tokenizers split a prompt differently: where each token ends in the prompt's
// text, and which position of another tokenization ends the same text prefix. Pure.

// End offset in `text` of each token, i.e. the prefix the model has read at that position. Tokens are matched in
// order from a cursor; a tokenizer may drop a leading space when it decodes one token (SentencePiece), so
// whitespace before a match is skipped. A token not found there (BOS/special tokens, undecodable fragments of a
// multi-byte character, shown as "\ufffd") reads nothing from the text: it ends where the previous one ended, except
// that the text skipped before the next match belongs to such tokens, so the last of them ends where that text ends.
export function tokenEnds(text, tokens) {
  const ends = [];
  let cur = 0;
  let pending = -1; // index of the last token not found in the text since the last match
  tokens.forEach((tok, i) => {
    const t = tok === null || tok === undefined ? "" : String(tok);
    let at = t && text.startsWith(t, cur) ? cur : -1;
    let len = t.length;
    if (at < 0) {
      const core = t.trim();
      const found = core ? text.indexOf(core, cur) : -1;
      if (found >= 0 && (pending >= 0 || !text.slice(cur, found).trim())) {
        const lead = t.indexOf(core); // the token's own leading whitespace, when the text has it too
        at = lead > 0 && text.slice(found - lead, found) === t.slice(0, lead) ? found - lead : found;
        len = found + core.length - at;
      }
    }
    if (at < 0) {
      pending = i;
      ends.push(cur);
      return;
    }
    if (pending >= 0 && at > cur) ends[pending] = at;
    pending = -1;
    cur = at + len;
    ends.push(cur);
  });
  return ends;
}

// The tokenizations of a prompt from the lens header: [{checkpoints: [c, ...], tokens: [[pos, tok], ...]}]; one
// (every checkpoint) when they all split it alike.
export function tokenizations(prompt, nCheckpoints) {
  if (prompt.tokenizations && prompt.tokenizations.length) return prompt.tokenizations;
  return [{ checkpoints: Array.from({ length: nCheckpoints }, (_, c) => c), tokens: prompt.tokens }];
}

// For the position `pos` picked in tokenization `g`: per tokenization, the position that ends the same text prefix
// (the last one, when several do: special tokens read no text), or null when none does.
export function alignPositions(text, groups, g, pos) {
  const ends = groups.map((grp) => tokenEnds(text, grp.tokens.map(([, tok]) => tok)));
  const i = groups[g].tokens.findIndex(([p]) => p === pos);
  if (i < 0) return groups.map(() => null);
  const end = ends[g][i];
  return groups.map((grp, k) => {
    if (k === g) return pos;
    let at = null;
    grp.tokens.forEach(([p], j) => { if (ends[k][j] === end) at = p; });
    return at;
  });
}
