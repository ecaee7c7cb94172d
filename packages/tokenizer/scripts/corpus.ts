/**
 * Training text for the test tokenizers in `src/fixtures/`: English prose and dialogue, code, numbers, accented
 * Latin, Greek, Cyrillic, CJK and emoji, so that learned merges include multi-byte characters split across tokens.
 */
export const corpus = `The lighthouse keeper woke before the sun, as she had done for thirty-one years. She climbed the
one hundred and twelve steps, wound the clockwork, trimmed the wick and wrote the weather in the log: wind from the
north-west, sea moderate, visibility good. Then she made tea, and watched the fishing boats leave the harbour one by
one, their lights going out as the morning came.

"Can you tell me the way to the station?" asked the traveller.
"Of course. Go straight on until you reach the bridge, then turn left. It's about ten minutes on foot."
"Thank you very much. I'm in a hurry; my train leaves at 10:45."
"Then you'd better run! They're never late on Sundays."

User: What is the capital of France?
Assistant: The capital of France is Paris. It has been the capital since the tenth century, with a few interruptions.
User: And how many people live there?
Assistant: About 2.1 million people live in the city itself, and more than 12 million in the metropolitan area.
User: Can you write a haiku about the sea?
Assistant: Grey waves fold and break / the gulls write their names in salt / the tide takes them back.

def fibonacci(n: int) -> int:
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

function greet(name) {
  const message = \`Hello, \${name}!\`;
  console.log(message);
  return { ok: true, length: message.length };
}

SELECT name, count(*) AS total FROM orders WHERE created_at >= '2024-01-01' GROUP BY name ORDER BY total DESC;

The quarterly report showed revenue of $4,210,000 (up 12.5% year over year), 1,024 new customers and 3.14 million
active users. Prices: 19.99 EUR, 7.50 GBP, 1200 JPY. Call +1 (555) 010-2030 before 17:00.

Le café de la gare ouvre à sept heures. Nous avons mangé une crème brûlée délicieuse et bu un thé très chaud.
C'est un garçon naïf qui rêve de voyager en Égypte, au Pérou et à Noël il ira à Montréal.
Die Straße war nass, und die Bäume rauschten im Wind. Über den Dächern flog ein Vogel; schön und müde.
El niño comió una manzana mientras su señora madre leía el periódico en el jardín. ¿Dónde está la estación?
Ελληνικά: η θάλασσα είναι ήρεμη σήμερα και ο ουρανός καθαρός.
Русский: море сегодня спокойное, и небо ясное. Спасибо за помощь!

日本語の文章も少し入れておきます。東京は日本の首都です。今日は天気がいいですね。日本語を勉強しています。
中文：北京是中国的首都。今天天气很好，我们去公园散步吧。我喜欢学习中文，也喜欢喝茶。
한국어: 서울은 한국의 수도입니다. 오늘 날씨가 좋네요. 감사합니다!

Emoji keep turning up in chat: 😀 🎉 👍 ❤️ 🚀 — and families like 👩‍👩‍👧 or flags like 🇫🇷 and 🇯🇵. Thanks! 🙏
Math: ∀x ∈ ℝ, x² ≥ 0; π ≈ 3.14159; e^(iπ) + 1 = 0; √2 ≈ 1.41421; 10 × 3 ÷ 2 = 15; temperature −5 °C.

The museum opened a new exhibition about the history of navigation: maps, compasses, sextants and the logbooks of
sailors who crossed the ocean without satellites. Visitors could try to find their position using only the stars.
In the evening the keeper read by lamplight, and the beam of the lighthouse swept the water, again and again, until
the morning came back over the hills.
`;
