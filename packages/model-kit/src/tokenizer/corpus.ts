/**
 * The text the tokenizers' merges are learned from. Written for this package (no third-party text): plain English
 * prose with punctuation and numbers, a little TypeScript and JSON, Chinese and Japanese lines, and emoji, so that
 * the learned vocabulary has whole English words, digit groups, code fragments and multi-byte pieces.
 */
export const trainingCorpus = `The lighthouse keeper woke before the sun, as she had done for thirty-one years.
She climbed the 114 steps, checked the lamp, and wrote the weather in her notebook: wind from the west, 12 knots,
light rain, visibility fair. Then she made tea, and the kettle sang the same song it sang every morning.

In the village below, the baker was already at work. He said the secret of good bread is patience, not flour.
"Give it time," he told his apprentice, "and the dough will tell you when it is ready." The apprentice, who was
seventeen and impatient, wrote that down too. Everyone in the village seemed to be writing something down.

On Tuesday the ferry was late. It was supposed to arrive at 9:45, but it came at 10:20, and nobody minded much.
The captain apologised twice; the passengers laughed, because the sea was calm and the sky was very blue.
A child counted the gulls on the pier: one, two, three, four, five... then she gave up at 27 and ate an apple.

Questions are easier than answers. Why does the tide turn? What makes a song stay in your head for days?
How many grains of sand are on this beach? (More than 1,000,000, certainly; perhaps more than 10^18.)
The teacher said that a good question is worth more than a quick answer, and the class did not believe her.

The library opened at 8 a.m. and closed at 6 p.m., except on Sundays. It had 4,512 books, 36 maps, 2 globes
and one very old cat named Pepper, who slept on the returns desk and judged everyone who walked past.
"Please return books on time," said a sign. "Pepper is watching." The fines were small: 5 cents a day.

Prices at the market, week 23:
- apples: 2.50 per kilo
- pears: 3.10 per kilo
- bread: 1.95 a loaf
- eggs: 4.20 a dozen (up 8% since last month)
- tea: 6.75 a box

The river runs north for 240 kilometres before it meets the sea. Along the way it passes 3 towns, 17 bridges
and a mill that has been grinding grain since 1887. The miller's family still owns it; the great-grandson
runs it now, and he says the water wheel is older than the church, which is probably true.

When you write a program, you are really writing a letter to the next person who reads it. Name things well.
Keep functions short. Test the edge cases: the empty list, the single item, the very large number, the
negative zero, the string with a newline in it. The computer will forgive you; your colleagues might not.

function greet(name: string): string {
  if (name.length === 0) {
    return 'Hello, world!';
  }
  return \`Hello, \${name}!\`;
}

export function sum(values: number[]): number {
  let total = 0;
  for (const value of values) {
    total += value;
  }
  return total;
}

const config = { "model": "tiny", "layers": 2, "heads": 4, "temperature": 0.7, "top_p": 0.9, "stream": true };
for (let i = 0; i < 10; i++) console.log(i * i);
if (x >= 0 && y <= 100) { return [x, y]; } else { throw new Error("out of range: " + x); }

def mean(values):
    return sum(values) / len(values) if values else 0.0

SELECT name, count(*) AS visits FROM visitors WHERE day = '2024-03-15' GROUP BY name ORDER BY visits DESC;

The weather report for the coast: Monday, sunny, 21 degrees; Tuesday, cloudy, 18 degrees; Wednesday, rain,
16 degrees; Thursday, storms in the afternoon, 15 degrees; Friday, clear again, 19 degrees. Bring a coat.

Every morning the keeper wrote the weather, and every evening she read what she had written. Over the years
the notebooks filled a whole shelf, then two shelves, then a cupboard. When a student from the university asked
to read them, she said yes, on one condition: that he write something in the newest notebook before he left.

今天天气很好，我们去公园散步吧。
我喜欢读书，也喜欢写字。图书馆里有很多书。
学习一门新的语言需要时间和耐心。
明天早上八点，我们在火车站见面。
这个程序很简单，但是测试很重要。
今日はとても良い天気ですね。散歩に行きましょう。
私は毎朝コーヒーを飲みます。そして新聞を読みます。
東京から大阪まで新幹線で二時間半かかります。
한국어도 조금 공부하고 있어요. 감사합니다!

Good morning! 🌅 The coffee is ready ☕ and the cat is asleep 🐈.
We did it! 🎉🎉 Thank you all 🙏 — see you next week 👋
Weather: ☀️ Monday, 🌧️ Tuesday, ⛈️ Wednesday, 🌈 Thursday.
I love this song ❤️ 🎶 and I can't stop listening to it 😂😂.
Ship it 🚀 — but test it first ✅ and write the changelog 📝.

Numbers appear everywhere: 3.14159, 2.71828, 1.41421, 0.57721, 42, 64, 128, 256, 512, 1024, 2048, 4096.
Dates too: 2023-01-01, 2024-02-29, 1999-12-31, and times like 07:30, 12:00, 23:59:59.
Phone: +1 (555) 010-2030. Order #A-1047 shipped on 05/06/2024; tracking code ZX-993-441-07.

It's a small world, isn't it? We'll see. They're here; you've been told; I'm sure she'd agree, and he'll come.
Don't worry, it isn't far: we're almost there, and they've kept the lights on for us. I'd say we've done well.

The end of the story is simple. The keeper retired at last, and the lighthouse was run by a machine that did
not need tea. But on stormy nights, people in the village said they could still see someone at the top of the
tower, writing in a notebook by the light of the lamp, and they were glad of it.
`;
