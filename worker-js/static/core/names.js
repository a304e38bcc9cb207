// @ts-check
// names.js: the user-name rule, mirrored from mux/names.go (keep the two in
// step; both are tested against mux/testdata/names.json). A name is 1–32
// bytes of UTF-8: letters, ASCII digits and _ - . , where every letter
// belongs to one Unicode script (Han may go with Hiragana and Katakana, with
// Hangul, or with Bopomofo). The server compares names without regard to
// case; that is its business, not the client's.

export const MAX_NAME_BYTES = 32;

// Every script but Common, Inherited and Latin (tried first), as Go's
// unicode.Scripts names them.
const SCRIPTS = [
  'Latin', 'Adlam', 'Ahom', 'Anatolian_Hieroglyphs', 'Arabic', 'Armenian',
  'Avestan', 'Balinese', 'Bamum', 'Bassa_Vah', 'Batak', 'Bengali',
  'Bhaiksuki', 'Bopomofo', 'Brahmi', 'Braille', 'Buginese', 'Buhid',
  'Canadian_Aboriginal', 'Carian', 'Caucasian_Albanian', 'Chakma', 'Cham',
  'Cherokee', 'Chorasmian', 'Coptic', 'Cuneiform', 'Cypriot', 'Cypro_Minoan',
  'Cyrillic', 'Deseret', 'Devanagari', 'Dives_Akuru', 'Dogra', 'Duployan',
  'Egyptian_Hieroglyphs', 'Elbasan', 'Elymaic', 'Ethiopic', 'Georgian',
  'Glagolitic', 'Gothic', 'Grantha', 'Greek', 'Gujarati', 'Gunjala_Gondi',
  'Gurmukhi', 'Han', 'Hangul', 'Hanifi_Rohingya', 'Hanunoo', 'Hatran',
  'Hebrew', 'Hiragana', 'Imperial_Aramaic', 'Inscriptional_Pahlavi',
  'Inscriptional_Parthian', 'Javanese', 'Kaithi', 'Kannada', 'Katakana',
  'Kawi', 'Kayah_Li', 'Kharoshthi', 'Khitan_Small_Script', 'Khmer', 'Khojki',
  'Khudawadi', 'Lao', 'Lepcha', 'Limbu', 'Linear_A', 'Linear_B', 'Lisu',
  'Lycian', 'Lydian', 'Mahajani', 'Makasar', 'Malayalam', 'Mandaic',
  'Manichaean', 'Marchen', 'Masaram_Gondi', 'Medefaidrin', 'Meetei_Mayek',
  'Mende_Kikakui', 'Meroitic_Cursive', 'Meroitic_Hieroglyphs', 'Miao',
  'Modi', 'Mongolian', 'Mro', 'Multani', 'Myanmar', 'Nabataean',
  'Nag_Mundari', 'Nandinagari', 'New_Tai_Lue', 'Newa', 'Nko', 'Nushu',
  'Nyiakeng_Puachue_Hmong', 'Ogham', 'Ol_Chiki', 'Old_Hungarian',
  'Old_Italic', 'Old_North_Arabian', 'Old_Permic', 'Old_Persian',
  'Old_Sogdian', 'Old_South_Arabian', 'Old_Turkic', 'Old_Uyghur', 'Oriya',
  'Osage', 'Osmanya', 'Pahawh_Hmong', 'Palmyrene', 'Pau_Cin_Hau', 'Phags_Pa',
  'Phoenician', 'Psalter_Pahlavi', 'Rejang', 'Runic', 'Samaritan',
  'Saurashtra', 'Sharada', 'Shavian', 'Siddham', 'SignWriting', 'Sinhala',
  'Sogdian', 'Sora_Sompeng', 'Soyombo', 'Sundanese', 'Syloti_Nagri',
  'Syriac', 'Tagalog', 'Tagbanwa', 'Tai_Le', 'Tai_Tham', 'Tai_Viet', 'Takri',
  'Tamil', 'Tangsa', 'Tangut', 'Telugu', 'Thaana', 'Thai', 'Tibetan',
  'Tifinagh', 'Tirhuta', 'Toto', 'Ugaritic', 'Vai', 'Vithkuqi', 'Wancho',
  'Warang_Citi', 'Yezidi', 'Yi', 'Zanabazar_Square'
];

const SETS = [['Han', 'Hiragana', 'Katakana'], ['Han', 'Hangul'], ['Han', 'Bopomofo']];

let tests = null; // [name, RegExp] for each script this engine knows

function scriptOf(ch) {
  if (ch === 'ー' || ch === 'ｰ') return 'Katakana'; // the prolonged sound mark: Common, but kana
  const c = ch.codePointAt(0);
  if ((c >= 0xFF21 && c <= 0xFF3A) || (c >= 0xFF41 && c <= 0xFF5A) || (c >= 0xFB00 && c <= 0xFB06)) return ''; // fullwidth Latin, ligatures
  if (!tests) {
    tests = [];
    for (const n of SCRIPTS) {
      try { tests.push([n, new RegExp(`^\\p{Script=${n}}$`, 'u')]); } catch { /* a script newer than this engine */ }
    }
  }
  for (const [n, re] of tests) if (re.test(ch)) return n;
  return '';
}

function compatible(seen) {
  return seen.length <= 1 || SETS.some((set) => seen.every((s) => set.includes(s)));
}

const LETTER = /^\p{L}$/u;
const OTHER = /^[0-9_.-]$/;

// checkName returns '' for a valid name, else why it is not one.
export function checkName(n) {
  if (typeof n !== 'string') return 'a name is a string';
  const bytes = new TextEncoder().encode(n).length;
  if (bytes === 0 || bytes > MAX_NAME_BYTES) return `names are 1–${MAX_NAME_BYTES} bytes`;
  if (n.isWellFormed && !n.isWellFormed()) return 'the name is not valid Unicode';
  const seen = [];
  for (const ch of n) {
    if (OTHER.test(ch)) continue;
    if (!LETTER.test(ch)) return `"${ch}" is not allowed (letters of one script, digits 0-9, _ - .; no spaces, no @)`;
    const s = scriptOf(ch);
    if (!s) return `the letter "${ch}" belongs to no script`;
    if (!seen.includes(s)) {
      seen.push(s);
      if (!compatible(seen)) return `the name mixes letters of the scripts ${seen.join(' and ')}: a name's letters must all be of one script`;
    }
  }
  return '';
}

// validName reports whether n may be a user name.
export function validName(n) { return checkName(n) === ''; }

export const MAX_ROOM_BYTES = 64;
const ROOM_CHAR = /^[\p{L}\p{Nd}_.-]$/u;

// checkRoom returns '' for a valid room name, else why it is not one: 1–64
// bytes of letters and digits of any script, _ - . (mux.ValidRoom).
/** @param {unknown} r */
export function checkRoom(r) {
  if (typeof r !== 'string') return 'a room name is a string';
  const bytes = new TextEncoder().encode(r).length;
  if (bytes === 0 || bytes > MAX_ROOM_BYTES) return `room names are 1–${MAX_ROOM_BYTES} bytes`;
  for (const ch of r) if (!ROOM_CHAR.test(ch)) return `"${ch}" is not allowed in a room name (letters, digits, _ - .)`;
  return '';
}

/** @param {unknown} r */
export function validRoom(r) { return checkRoom(r) === ''; }
