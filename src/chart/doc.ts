/**
 * The markdown block that carries the generated diagram, between marker comments, so the
 * prose around it is hand-written and the diagram is not.
 */
export const DOC_BEGIN = '<!-- chart:begin -->';
export const DOC_END = '<!-- chart:end -->';

/** The markdown with the block between the markers replaced; throws when the markers are missing. */
export function embedInDoc(markdown: string, mermaid: string): string {
  const begin = markdown.indexOf(DOC_BEGIN);
  const end = markdown.indexOf(DOC_END, begin);
  if (begin < 0 || end < 0) throw new Error(`no '${DOC_BEGIN}' … '${DOC_END}' markers to write the chart between`);
  const block = `${DOC_BEGIN}\n\`\`\`mermaid\n${mermaid.endsWith('\n') ? mermaid : `${mermaid}\n`}\`\`\`\n${DOC_END}`;
  return markdown.slice(0, begin) + block + markdown.slice(end + DOC_END.length);
}
